"""Members and roles: invitations, grant ceilings, the last owner, custom and site roles."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import ApplicationError, Forbidden
from accounts.models import Membership, Role, Site, SiteRoleAssignment, User
from accounts.services.invitations import member_invite
from accounts.services.members import (
    membership_remove,
    membership_update,
    site_role_assign,
)
from tests.accounts.conftest import fresh
from tests.conftest import OrgWorld, api_client_for, make_user

NEW_PASSWORD = "a-brand-new-passphrase-42"


def role(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org=None)


def membership(world: OrgWorld, who: str) -> Membership:
    return Membership.unscoped.get(org=world.org, user=world.users[who])


def invite(client: Any, world: OrgWorld, email: str, role_slug: str = "viewer") -> Any:
    return client.post(
        "/api/v1/memberships/",
        {"org": world.org.pk, "email": email, "role": role_slug},
        format="json",
    )


# --- nobody grants more than they hold ----------------------------------------------------------


def test_admin_cannot_make_an_owner(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    response = invite(admin, org_a, "wannabe@alpha.example", "owner")
    assert response.status_code == 400 and "role" in response.json()
    assert not User.objects.filter(email="wannabe@alpha.example").exists()

    viewer = membership(org_a, "viewer")
    response = admin.patch(f"/api/v1/memberships/{viewer.pk}/", {"role": "owner"}, format="json")
    assert response.status_code == 400 and "role" in response.json()
    assert fresh_role(viewer) == "viewer"


def test_admin_cannot_demote_or_remove_an_owner(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    owner = membership(org_a, "owner")
    assert (
        admin.patch(
            f"/api/v1/memberships/{owner.pk}/", {"role": "viewer"}, format="json"
        ).status_code
        == 400
    )
    assert admin.delete(f"/api/v1/memberships/{owner.pk}/").status_code == 400
    assert fresh_role(owner) == "owner"


def test_admin_cannot_escalate_through_a_custom_role(org_a: OrgWorld) -> None:
    """Create or edit a custom role holding more than you, then take it: refused at both steps."""
    admin = api_client_for(org_a.users["admin"])
    response = admin.post(
        "/api/v1/roles/",
        {"org": org_a.org.pk, "name": "Shadow owner", "permissions": ["org:manage"]},
        format="json",
    )
    assert response.status_code == 400 and "permissions" in response.json()

    created = admin.post(
        "/api/v1/roles/",
        {"org": org_a.org.pk, "name": "Helper", "permissions": ["site:read"]},
        format="json",
    )
    assert created.status_code == 201
    response = admin.patch(
        f"/api/v1/roles/{created.json()['id']}/",
        {"permissions": ["site:read", "org:manage"]},
        format="json",
    )
    assert response.status_code == 400
    assert Role.unscoped.get(pk=created.json()["id"]).permissions == ["site:read"]

    # an owner-made role holding org:manage can't be edited by the admin either
    owner_role = api_client_for(org_a.users["owner"]).post(
        "/api/v1/roles/",
        {"org": org_a.org.pk, "name": "Deputy", "permissions": ["org:manage", "site:read"]},
        format="json",
    )
    assert owner_role.status_code == 201
    response = admin.patch(
        f"/api/v1/roles/{owner_role.json()['id']}/", {"name": "Renamed"}, format="json"
    )
    assert response.status_code == 400


def test_operator_cannot_grant_anything_even_through_the_service(org_a: OrgWorld) -> None:
    with pytest.raises(Forbidden):
        member_invite(
            actor=Actor.for_user(org_a.users["operator"]),
            org=org_a.org,
            email="x@alpha.example",
            role=role("admin"),
            base_url="http://testserver/",
        )


def fresh_role(m: Membership) -> str:
    return Membership.unscoped.select_related("role").get(pk=m.pk).role.slug


# --- the last owner ---------------------------------------------------------------------------------


def test_last_owner_cannot_be_demoted_or_removed(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    mine = membership(org_a, "owner")
    response = owner.patch(f"/api/v1/memberships/{mine.pk}/", {"role": "admin"}, format="json")
    assert response.status_code == 400 and "role" in response.json()
    assert owner.delete(f"/api/v1/memberships/{mine.pk}/").status_code == 400
    assert fresh_role(mine) == "owner"


def test_with_a_second_owner_the_first_may_step_down(org_a: OrgWorld) -> None:
    second = make_user("second-owner@alpha.example", org_a.org, "owner")
    owner = api_client_for(org_a.users["owner"])
    mine = membership(org_a, "owner")
    assert (
        owner.patch(f"/api/v1/memberships/{mine.pk}/", {"role": "admin"}, format="json").status_code
        == 200
    )
    # now the second owner is the last one
    last = Membership.unscoped.get(user=second, org=org_a.org)
    with pytest.raises(ApplicationError):
        membership_remove(actor=Actor.for_user(second), membership=last)
    with pytest.raises(ApplicationError):
        membership_update(actor=Actor.for_user(second), membership=last, role=role("viewer"))


def test_removing_a_member_drops_their_site_roles(org_a: OrgWorld) -> None:
    actor = Actor.for_user(org_a.users["owner"])
    viewer = org_a.users["viewer"]
    site_role_assign(actor=actor, site=org_a.sites[0], user=viewer, role=role("operator"))
    membership_remove(actor=actor, membership=membership(org_a, "viewer"))
    assert not SiteRoleAssignment.unscoped.filter(user=viewer).exists()
    assert not has_perm(fresh(viewer), "site:read", org_a.org.pk, org_a.sites[0].pk)


# --- custom and built-in roles -----------------------------------------------------------------------


def test_custom_role_with_an_unknown_permission_is_a_400(org_a: OrgWorld) -> None:
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/roles/",
        {"org": org_a.org.pk, "name": "Typo", "permissions": ["site:read", "miner:teleport"]},
        format="json",
    )
    assert response.status_code == 400
    assert "permissions" in response.json()
    assert not Role.unscoped.filter(org=org_a.org).exists()


@pytest.mark.parametrize("slug", ["owner", "admin", "operator", "viewer", "field_tech"])
def test_builtin_roles_are_immutable(org_a: OrgWorld, slug: str) -> None:
    owner = api_client_for(org_a.users["owner"])
    builtin = role(slug)
    before = list(builtin.permissions)
    assert (
        owner.patch(
            f"/api/v1/roles/{builtin.pk}/", {"permissions": ["site:read"]}, format="json"
        ).status_code
        == 400
    )
    assert (
        owner.put(
            f"/api/v1/roles/{builtin.pk}/", {"name": "Mine", "permissions": []}, format="json"
        ).status_code
        == 400
    )
    assert owner.delete(f"/api/v1/roles/{builtin.pk}/").status_code == 400
    assert Role.unscoped.get(pk=builtin.pk).permissions == before
    # and a viewer may not even try
    assert (
        api_client_for(org_a.users["viewer"]).delete(f"/api/v1/roles/{builtin.pk}/").status_code
        == 403
    )


def test_role_in_use_cannot_be_deleted(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    created = owner.post(
        "/api/v1/roles/",
        {"org": org_a.org.pk, "name": "Racker", "permissions": ["site:read"]},
        format="json",
    ).json()
    viewer = membership(org_a, "viewer")
    assert (
        owner.patch(
            f"/api/v1/memberships/{viewer.pk}/", {"role": "racker"}, format="json"
        ).status_code
        == 200
    )
    assert owner.delete(f"/api/v1/roles/{created['id']}/").status_code == 400
    assert Role.unscoped.filter(pk=created["id"]).exists()


def test_another_orgs_custom_role_cannot_be_granted(org_a: OrgWorld, org_b: OrgWorld) -> None:
    Role.unscoped.create(
        org=org_b.org, slug="bravo-only", name="Bravo only", permissions=["site:read"]
    )
    viewer = membership(org_a, "viewer")
    response = api_client_for(org_a.users["owner"]).patch(
        f"/api/v1/memberships/{viewer.pk}/", {"role": "bravo-only"}, format="json"
    )
    assert response.status_code == 400
    assert fresh_role(viewer) == "viewer"


# --- site roles narrow and widen ------------------------------------------------------------------


def assign(world: OrgWorld, who: str, site: Site, role_slug: str) -> None:
    site_role_assign(
        actor=Actor.for_user(world.users["owner"]),
        site=site,
        user=world.users[who],
        role=role(role_slug),
    )


def rename(user: User, site: Site) -> int:
    """Status of renaming ``site`` through the API as ``user`` (needs site:manage there)."""
    client = api_client_for(fresh(user))
    return client.patch(
        f"/api/v1/sites/{site.pk}/", {"name": "alpha renamed"}, format="json"
    ).status_code


def test_site_role_widens_a_viewer_at_that_site_only(org_a: OrgWorld) -> None:
    here, there = org_a.sites
    assign(org_a, "viewer", here, "operator")
    viewer = fresh(org_a.users["viewer"])
    assert has_perm(viewer, "miner:reboot", org_a.org.pk, here.pk)
    assert not has_perm(viewer, "miner:reboot", org_a.org.pk, there.pk)
    assert not has_perm(viewer, "miner:reboot", org_a.org.pk)

    assign(org_a, "viewer", here, "admin")
    assert rename(org_a.users["viewer"], here) == 200
    assert rename(org_a.users["viewer"], there) == 403


def test_site_role_narrows_an_operator_at_that_site(org_a: OrgWorld) -> None:
    here, there = org_a.sites
    assign(org_a, "operator", here, "viewer")
    operator = fresh(org_a.users["operator"])
    assert not has_perm(operator, "miner:reboot", org_a.org.pk, here.pk)
    assert has_perm(operator, "miner:reboot", org_a.org.pk, there.pk)

    assign(org_a, "admin", here, "viewer")
    assert rename(org_a.users["admin"], here) == 403
    assert rename(org_a.users["admin"], there) == 200


def test_site_role_without_reads_hides_the_site(org_a: OrgWorld) -> None:
    here, there = org_a.sites
    nothing = Role.unscoped.create(org=org_a.org, slug="nothing", name="Nothing", permissions=[])
    site_role_assign(
        actor=Actor.for_user(org_a.users["owner"]),
        site=here,
        user=org_a.users["operator"],
        role=nothing,
    )
    client = api_client_for(fresh(org_a.users["operator"]))
    assert client.get(f"/api/v1/sites/{here.pk}/").status_code == 404
    assert [s["id"] for s in client.get("/api/v1/sites/").json()["results"]] == [there.pk]


def test_site_role_api_refuses_non_members_and_foreign_sites(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    owner = api_client_for(org_a.users["owner"])
    response = owner.post(
        "/api/v1/site-roles/",
        {"site": org_a.sites[0].pk, "user": org_b.users["viewer"].pk, "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400
    response = owner.post(
        "/api/v1/site-roles/",
        {"site": org_b.sites[0].pk, "user": org_a.users["viewer"].pk, "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400
    assert not SiteRoleAssignment.unscoped.exists()


@pytest.mark.parametrize("taken", ["Admin", "field tech", "Field-Tech", "Shift lead"])
def test_roles_can_not_share_a_name_with_another_role(org_a: OrgWorld, taken: str) -> None:
    from accounts.services.roles import role_create, role_update

    actor = Actor.for_user(org_a.users["owner"])
    role_create(actor=actor, org=org_a.org, name="Shift lead", permissions=["site:read"])
    night = role_create(actor=actor, org=org_a.org, name="Night crew", permissions=["site:read"])
    with pytest.raises(ApplicationError):
        role_create(actor=actor, org=org_a.org, name=taken, permissions=[])
    with pytest.raises(ApplicationError):
        role_update(actor=actor, role=night, name=taken)
    assert role_update(actor=actor, role=night, name="Night crew").name == "Night crew"


def test_long_role_names_sharing_a_slug_are_a_400_not_a_500(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    first = owner.post("/api/v1/roles/", {"name": "r" * 60 + "a", "permissions": []}, format="json")
    assert first.status_code == 201
    second = owner.post(
        "/api/v1/roles/", {"name": "r" * 60 + "b", "permissions": []}, format="json"
    )
    assert second.status_code == 400 and "name" in second.json()


def test_an_empty_membership_patch_changes_nothing(org_a: OrgWorld) -> None:
    viewer = membership(org_a, "viewer")
    response = api_client_for(org_a.users["owner"]).patch(
        f"/api/v1/memberships/{viewer.pk}/", {}, format="json"
    )
    assert response.status_code == 200 and response.json()["role"] == "viewer"
