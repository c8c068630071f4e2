"""The security page: sessions and their revocation, sign-in history, MFA links."""

from __future__ import annotations

from django.test import Client

from accounts.models import LoginEvent, TrackedSession
from tests.accounts.pages.support import HTMX, html, password_login, signed_in
from tests.conftest import OrgWorld


def test_sessions_can_be_revoked(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    mine, other, third = password_login(user), password_login(user), password_login(user)
    page = html(mine.get("/security/"))
    assert "This session" in page and "Firefox 131 on Linux" in page
    other_session = TrackedSession.objects.get(session_key=other.session.session_key)
    response = mine.post(f"/security/sessions/{other_session.pk}/revoke/", **HTMX)
    assert "Signed that session out" in html(response)
    assert other.get("/").status_code == 302
    current = TrackedSession.objects.get(session_key=mine.session.session_key)
    refused = mine.post(f"/security/sessions/{current.pk}/revoke/", **HTMX)
    assert "use Sign out" in html(refused)
    everyone = mine.post("/security/sessions/revoke-others/", **HTMX)
    assert "Signed out 1 other session" in html(everyone)
    assert third.get("/").status_code == 302
    assert mine.get("/").status_code == 200


def test_other_users_sessions_are_404(org_a: OrgWorld) -> None:
    victim = password_login(org_a.users["viewer"])
    session = TrackedSession.objects.get(session_key=victim.session.session_key)
    assert (
        signed_in(org_a.users["owner"]).post(f"/security/sessions/{session.pk}/revoke/").status_code
        == 404
    )
    assert victim.get("/").status_code == 200


def test_security_page_shows_sign_in_history_and_mfa_links(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    Client().post("/accounts/login/", {"login": user.email, "password": "wrong-password-1"})
    client = password_login(user)
    page = html(client.get("/security/"))
    assert "Wrong credentials" in page and "Success" in page
    assert "/accounts/2fa/totp/activate/" in page
    assert "/accounts/password/change/" in page
    assert LoginEvent.objects.filter(email=user.email).count() == 2
