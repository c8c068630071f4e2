"""Who may open which page: anonymous visitors, each built-in role, members without permissions."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership, Role, User
from tests.accounts.pages.support import (
    PAGES,
    assert_csp_clean,
    builtin,
    html,
    no_permission_member,
    signed_in,
)
from tests.conftest import ROLES, OrgWorld


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_every_builtin_role_sees_every_page(org_a: OrgWorld, role: str, path: str) -> None:
    response = signed_in(org_a.users[role]).get(path)
    assert response.status_code == 200
    assert org_a.org.name in html(response)
    assert_csp_clean(response)


def test_member_without_permissions_gets_403_and_a_trimmed_nav(org_a: OrgWorld) -> None:
    client = signed_in(no_permission_member(org_a))
    for path in ("/users/", "/roles/", "/activity/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "user:read" in html(response) or "activity:read" in html(response)
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert 'href="/users/"' not in html(dashboard)
    assert 'href="/activity/"' not in html(dashboard)
    assert 'href="/tokens/"' in html(dashboard)
    assert 'href="/security/"' in html(dashboard)


def test_user_without_an_org_gets_guidance_and_403s(outsider: User) -> None:
    client = signed_in(outsider)
    assert "not in an organization" in html(client.get("/"))
    assert client.get("/users/").status_code == 403
    assert client.get("/tokens/").status_code == 200


@pytest.mark.parametrize("role", ["operator", "viewer", "field_tech"])
def test_writes_need_their_permission(org_a: OrgWorld, role: str) -> None:
    client = signed_in(org_a.users[role])
    target = Membership.unscoped.get(user=org_a.users["viewer"])
    assert (
        client.post(
            "/users/invite/", {"email": "new@x.example", "role": builtin("viewer").pk}
        ).status_code
        == 403
    )
    assert (
        client.post(f"/users/{target.pk}/role/", {"role": builtin("admin").pk}).status_code == 403
    )
    assert client.post(f"/users/{target.pk}/remove/").status_code == 403
    assert client.post("/roles/create/", {"name": "Sneaky"}).status_code == 403
    assert not User.objects.filter(email="new@x.example").exists()
    assert Membership.unscoped.filter(pk=target.pk, role__slug="viewer").exists()
    assert not Role.unscoped.filter(name="Sneaky").exists()


def test_write_urls_refuse_get(org_a: OrgWorld) -> None:
    assert signed_in(org_a.users["owner"]).get("/users/invite/").status_code == 405


def test_htmx_request_without_login_gets_hx_redirect(client) -> None:
    response = client.post("/users/invite/", HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")
