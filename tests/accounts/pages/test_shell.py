"""The shell around every page: the org switcher, sign-in and allauth pages, CSP-clean."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.actor import Actor
from accounts.models import Membership
from accounts.services import invitations
from tests.accounts.pages.support import assert_csp_clean, builtin, html, password_login, signed_in
from tests.conftest import PASSWORD, OrgWorld


def test_org_switcher_changes_what_pages_show(org_a: OrgWorld, org_b: OrgWorld) -> None:
    user = org_a.users["admin"]
    Membership.unscoped.create(user=user, org=org_b.org, role=builtin("viewer"))
    client = signed_in(user)
    shell = html(client.get("/users/"))
    assert 'name="org"' in shell and org_b.org.name in shell
    response = client.post("/switch/", {"org": org_b.org.pk, "next": "/users/"})
    assert response["Location"] == "/users/"
    page = html(client.get("/users/"))
    assert "viewer@bravo.example" in page and "viewer@alpha.example" not in page
    assert 'action="/users/invite/"' not in page  # a viewer in bravo can't invite
    theirs = Membership.unscoped.get(user=org_a.users["viewer"])
    assert client.post(f"/users/{theirs.pk}/remove/").status_code == 403


def test_sign_in_page_is_ours_without_sign_up(db: None) -> None:
    response = Client().get("/accounts/login/")
    body = html(response)
    assert response.status_code == 200
    assert "entrance-card" in body and "/static/css/app.css" in body
    assert "/accounts/signup/" not in body
    assert_csp_clean(response)


def test_lockout_message_is_shown(org_a: OrgWorld, settings) -> None:
    settings.LOGIN_LOCKOUT_THRESHOLD = 3
    client = Client()
    for _ in range(3):
        failed = client.post(
            "/accounts/login/", {"login": "viewer@alpha.example", "password": "nope-nope-1"}
        )
        assert "not correct" in html(failed)
    locked = client.post(
        "/accounts/login/", {"login": "viewer@alpha.example", "password": PASSWORD}
    )
    assert "Too many failed sign-in attempts" in html(locked)
    assert locked.status_code == 200


def test_sign_in_lands_on_the_dashboard(org_a: OrgWorld) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/", {"login": "owner@alpha.example", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    body = html(response)
    assert "Welcome" in body and org_a.org.name in body and "Sign out" in body


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/change/",
        "/accounts/2fa/totp/activate/",
        "/accounts/logout/",
        "/nowhere/",
    ],
)
def test_allauth_and_error_pages_use_the_shell_and_stay_csp_clean(
    org_a: OrgWorld, path: str
) -> None:
    client = password_login(org_a.users["owner"])
    reauth = client.get("/accounts/reauthenticate/")
    assert "entrance-card" in html(reauth)
    assert_csp_clean(reauth)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert 'class="sidebar"' in html(response)
    assert_csp_clean(response)


def test_invitation_page_is_csp_clean(org_a: OrgWorld) -> None:
    issued = invitations.member_invite(
        actor=Actor.system(),
        org=org_a.org,
        email="once@x.example",
        role=builtin("viewer"),
        base_url="http://testserver/",
    )
    first = Client().get(issued.accept_url.replace("http://testserver", ""))
    assert "Choose a password" in html(first)
    assert_csp_clean(first)
