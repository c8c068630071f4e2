"""The roles page: the permission matrix, custom roles and errors, built-in and foreign roles."""

from __future__ import annotations

from django.utils.html import escape

from accounts.actor import Actor
from accounts.models import Membership, Role
from accounts.permissions import CATALOG
from accounts.services import roles
from tests.accounts.pages.support import HTMX, builtin, html, signed_in
from tests.conftest import OrgWorld


def test_matrix_lists_the_catalog_and_keeps_builtins_read_only(org_a: OrgWorld) -> None:
    custom = Role.unscoped.create(
        org=org_a.org, slug="night", name="Night shift", permissions=["miner:read"]
    )
    owner_view = html(signed_in(org_a.users["owner"]).get("/roles/"))
    for permission, description in CATALOG.items():
        assert permission in owner_view
        assert escape(description) in owner_view
    editable_columns = 1  # the custom role; built-ins are never editable
    assert owner_view.count('type="checkbox"') == editable_columns * len(CATALOG)
    assert f'form="role-{custom.pk}" name="permissions" value="miner:read" checked' in owner_view
    viewer_view = html(signed_in(org_a.users["viewer"]).get("/roles/"))
    assert 'type="checkbox"' not in viewer_view
    assert "Night shift" in viewer_view


def test_create_update_delete_a_custom_role(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    created = client.post(
        "/roles/create/", {"name": "Night shift", "copy_from": builtin("viewer").pk}, **HTMX
    )
    assert created.status_code == 200
    role = Role.unscoped.get(org=org_a.org, name="Night shift")
    assert set(role.permissions) == set(builtin("viewer").permissions)
    updated = client.post(
        f"/roles/{role.pk}/",
        {"name": "Nights", "permissions": ["miner:read", "miner:reboot"]},
        **HTMX,
    )
    assert "Saved the role Nights" in html(updated)
    role.refresh_from_db()
    assert (role.name, role.permissions) == ("Nights", ["miner:read", "miner:reboot"])
    unknown = client.post(
        f"/roles/{role.pk}/", {"name": "Nights", "permissions": ["miner:explode"]}, **HTMX
    )
    assert "Select a valid choice" in html(unknown)
    duplicate = client.post("/roles/create/", {"name": "Operator"}, **HTMX)
    assert "already exists" in html(duplicate)
    assert client.post(f"/roles/{role.pk}/delete/", **HTMX).status_code == 200
    assert not Role.unscoped.filter(pk=role.pk).exists()


def test_assigned_role_cannot_be_deleted(org_a: OrgWorld) -> None:
    role = Role.unscoped.create(org=org_a.org, slug="night", name="Night shift", permissions=[])
    Membership.unscoped.filter(user=org_a.users["viewer"]).update(role=role)
    response = signed_in(org_a.users["owner"]).post(f"/roles/{role.pk}/delete/", **HTMX)
    assert "still assigned" in html(response)
    assert Role.unscoped.filter(pk=role.pk).exists()


def test_builtin_and_foreign_roles_are_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = Role.unscoped.create(org=org_b.org, slug="night", name="Night shift", permissions=[])
    client = signed_in(org_a.users["owner"])
    assert (
        client.post(f"/roles/{builtin('viewer').pk}/", {"name": "X", "permissions": []}).status_code
        == 404
    )
    assert (
        client.post(f"/roles/{theirs.pk}/", {"name": "Mine", "permissions": []}).status_code == 404
    )
    assert client.post(f"/roles/{theirs.pk}/delete/").status_code == 404
    assert Role.unscoped.get(pk=theirs.pk).name == "Night shift"
    assert "Night shift" not in html(client.get("/roles/"))


def test_roles_service_error_is_shown_inline(org_a: OrgWorld) -> None:
    role = roles.role_create(actor=Actor.system(), org=org_a.org, name="Temp", permissions=[])
    response = signed_in(org_a.users["owner"]).post(
        f"/roles/{role.pk}/", {"name": "", "permissions": []}, **HTMX
    )
    assert "This field is required" in html(response)
    assert Role.unscoped.get(pk=role.pk).name == "Temp"
