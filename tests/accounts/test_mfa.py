"""TOTP enrolment through allauth's pages, then sign-in needs the code; recovery codes work once."""

from __future__ import annotations

import base64
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.conf import settings
from django.test import Client

from accounts.models import LoginEvent, LoginResult, User
from tests.accounts.conftest import browser, post_form, sign_in
from tests.accounts.support import is_signed_in
from tests.conftest import PASSWORD, OrgWorld
from tests.support import TOTP_PERIOD, totp


def fresh_code(secret: str) -> str:
    """A code that stays valid for the next request (don't straddle a period boundary)."""
    if TOTP_PERIOD - time.time() % TOTP_PERIOD < 1.5:
        time.sleep(TOTP_PERIOD - time.time() % TOTP_PERIOD + 0.05)
    return totp(secret)


def test_rfc6238_helper_matches_the_published_vector() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp(secret, at=59) == "287082"  # RFC 6238 appendix B, truncated to 6 digits
    assert totp(secret, at=1111111109) == "081804"


def enrol(user: User, ip: str) -> str:
    """Activate TOTP through the real pages; return the secret the page showed."""
    client = browser(ip)
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        # allauth asks for the password again before a security change, even right after sign-in
        response = post_form(client, page["Location"], {"password": PASSWORD})
        assert response.status_code == 302, response.status_code
        page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200, page.status_code
    secret = page.context["form"].secret
    assert secret and secret == client.session["mfa.totp.secret"]
    # post straight back (every GET of the page makes a new secret)
    code = fresh_code(secret)
    response = client.post(
        "/accounts/2fa/totp/activate/",
        {"code": code, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 302, (
        response.context["form"].errors if response.context else response
    )
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    return secret


def password_step(user: User, ip: str) -> Client:
    client = browser(ip)
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/authenticate/")
    assert not is_signed_in(client), "a correct password alone must not sign in"
    return client


def code_step(client: Client, code: str) -> object:
    return post_form(client, "/accounts/2fa/authenticate/", {"code": code})


@pytest.fixture
def user(org_a: OrgWorld) -> User:
    return org_a.users["owner"]


def test_enrolled_user_needs_the_code(user: User, ip: str) -> None:
    secret = enrol(user, ip)
    client = password_step(user, ip)
    assert client.get("/").status_code == 302  # not signed in between the two steps

    response = code_step(client, fresh_code(secret))
    assert response.status_code == 302
    assert is_signed_in(client)
    assert client.get("/").status_code == 200
    success = LoginEvent.objects.filter(user=user, result=LoginResult.SUCCESS).latest("id")
    assert success.method == "mfa"
    assert success.ip == ip


def test_wrong_code_fails_and_is_audited(user: User, ip: str) -> None:
    secret = enrol(user, ip)
    client = password_step(user, ip)
    right = fresh_code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    response = code_step(client, wrong)
    assert response.status_code == 200
    assert not is_signed_in(client)
    event = LoginEvent.objects.filter(user=user).latest("id")
    assert (event.result, event.method, event.ip) == (LoginResult.MFA_FAILURE, "mfa", ip)


def test_a_code_cannot_be_replayed(user: User, ip: str) -> None:
    secret = enrol(user, ip)
    code = fresh_code(secret)
    first = password_step(user, ip)
    assert code_step(first, code).status_code == 302
    second = password_step(user, ip)
    if totp(secret) == code:  # still the same period: the used code must be refused
        assert code_step(second, code).status_code == 200
        assert not is_signed_in(second)


def test_recovery_code_works_once(user: User, ip: str) -> None:
    enrol(user, ip)
    codes = RecoveryCodes(
        Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert len(codes) >= 5

    client = password_step(user, ip)
    assert code_step(client, codes[0]).status_code == 302
    assert is_signed_in(client)
    event = LoginEvent.objects.filter(user=user, result=LoginResult.SUCCESS).latest("id")
    assert event.method == "recovery_code"

    again = password_step(user, ip)
    assert code_step(again, codes[0]).status_code == 200
    assert not is_signed_in(again)
    assert LoginEvent.objects.filter(user=user, result=LoginResult.MFA_FAILURE).exists()


def test_wrong_codes_count_towards_the_lockout(user: User, ip: str) -> None:
    secret = enrol(user, ip)
    client = password_step(user, ip)
    right = fresh_code(secret)
    for i in range(settings.LOGIN_LOCKOUT_THRESHOLD):
        code_step(client, f"{(int(right) + 1 + i) % 1_000_000:06d}")
    later = browser(ip)
    response = sign_in(later, user.email, PASSWORD)
    assert not is_signed_in(later)
    assert response.status_code == 200  # the password step now answers with the lockout


def test_no_insecure_totp_bypass_code_is_configured() -> None:
    assert not getattr(settings, "MFA_TOTP_INSECURE_BYPASS_CODE", None)


def test_me_reports_mfa(user: User, ip: str) -> None:
    from tests.conftest import api_client_for

    assert api_client_for(user).get("/api/v1/me/").json()["mfa_enabled"] is False
    enrol(user, ip)
    assert api_client_for(user).get("/api/v1/me/").json()["mfa_enabled"] is True
