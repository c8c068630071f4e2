"""Sign-in through the real allauth page: lockout with backoff, per-IP limit, audit, metrics."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import LoginEvent, LoginLockout, LoginResult, User
from tests.accounts.conftest import browser, sign_in
from tests.accounts.support import is_signed_in
from tests.conftest import PASSWORD, OrgWorld

LOCKED_TEXT = "Too many failed sign-in attempts"


def errors(response: object) -> str:
    """The sign-in form's errors, read from the template context (independent of the markup)."""
    form = response.context["form"]  # type: ignore[attr-defined]
    return " ".join(str(e) for errs in form.errors.values() for e in errs)


def fail(client: Client, email: str, times: int) -> None:
    for _ in range(times):
        response = sign_in(client, email, "definitely-wrong-9")
        assert response.status_code == 200
        assert "not correct" in errors(response) or LOCKED_TEXT in errors(response)


def lock_seconds(email: str) -> float:
    row = LoginLockout.objects.get(key=f"email:{email}")
    return (row.locked_until - timezone.now()).total_seconds()


def expire_locks() -> None:
    """Time passes: every lock has run out (the failure history stays)."""
    LoginLockout.objects.update(locked_until=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def user(org_a: OrgWorld) -> User:
    return org_a.users["operator"]


def test_wrong_passwords_lock_the_account_even_for_the_right_password(user: User, ip: str) -> None:
    client = browser(ip)
    fail(client, user.email, settings.LOGIN_LOCKOUT_THRESHOLD)

    response = sign_in(client, user.email, PASSWORD)
    assert LOCKED_TEXT in errors(response)
    assert not is_signed_in(client)
    assert client.get("/").status_code == 302  # still sent to sign-in
    # the lock is per account: another IP gets the same answer
    other = browser("10.255.255.254")
    assert LOCKED_TEXT in errors(sign_in(other, user.email, PASSWORD))
    assert not is_signed_in(other)


def test_backoff_doubles_on_the_next_lock(user: User, ip: str, settings: object) -> None:
    client = browser(ip)
    base = settings.LOGIN_LOCKOUT_BASE_SECONDS  # type: ignore[attr-defined]
    threshold = settings.LOGIN_LOCKOUT_THRESHOLD  # type: ignore[attr-defined]

    fail(client, user.email, threshold)
    first = lock_seconds(user.email)
    assert base - 5 < first <= base

    expire_locks()
    fail(client, user.email, threshold)
    second = lock_seconds(user.email)
    assert 2 * base - 5 < second <= 2 * base
    assert LOCKED_TEXT in errors(sign_in(client, user.email, PASSWORD))


def test_backoff_is_capped(user: User, ip: str, settings: object) -> None:
    settings.LOGIN_LOCKOUT_THRESHOLD = 1  # type: ignore[attr-defined]
    settings.LOGIN_LOCKOUT_MAX_SECONDS = 150  # type: ignore[attr-defined]
    client = browser(ip)
    for _ in range(4):  # 60, 120, 240→150, 480→150
        fail(client, user.email, 1)
        expire_locks()
    fail(client, user.email, 1)
    assert 145 < lock_seconds(user.email) <= 150


def test_success_resets_the_failure_count_and_the_backoff(user: User, ip: str) -> None:
    client = browser(ip)
    threshold = settings.LOGIN_LOCKOUT_THRESHOLD
    fail(client, user.email, threshold - 1)
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    assert is_signed_in(client)
    assert not LoginLockout.objects.filter(key=f"email:{user.email}").exists()

    client = browser(ip)
    fail(client, user.email, threshold - 1)  # would have locked without the reset
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    assert is_signed_in(client)


def test_unknown_accounts_lock_the_same_way(db: None, ip: str) -> None:
    """No account enumeration: a made-up address gets the same answers as a real one."""
    client = browser(ip)
    fail(client, "nobody@alpha.example", settings.LOGIN_LOCKOUT_THRESHOLD)
    assert LOCKED_TEXT in errors(sign_in(client, "nobody@alpha.example", PASSWORD))


def test_per_ip_limit_locks_out_every_account_from_that_address(
    org_a: OrgWorld, ip: str, settings: object
) -> None:
    settings.LOGIN_IP_FAILURE_LIMIT = 3  # type: ignore[attr-defined]
    attacker = browser(ip)
    for role in (
        "viewer",
        "field_tech",
        "admin",
    ):  # one failure each: no account reaches its own limit
        fail(attacker, org_a.users[role].email, 1)
    response = sign_in(attacker, org_a.users["owner"].email, PASSWORD)
    assert LOCKED_TEXT in errors(response)
    assert not is_signed_in(attacker)
    # the same account from another address is fine
    elsewhere = browser("10.254.0.1")
    assert sign_in(elsewhere, org_a.users["owner"].email, PASSWORD).status_code == 302
    assert is_signed_in(elsewhere)


def test_every_attempt_is_audited(user: User, ip: str) -> None:
    client = browser(ip, agent="RigBrowser/7 (audit test)")
    threshold = settings.LOGIN_LOCKOUT_THRESHOLD
    fail(client, user.email, threshold)
    sign_in(client, user.email, PASSWORD)  # locked
    expire_locks()
    sign_in(client, user.email, PASSWORD)  # success
    client.post("/accounts/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})

    events = list(LoginEvent.objects.filter(ip=ip).order_by("created_at", "id"))
    results = [e.result for e in events]
    assert results == [LoginResult.FAILURE] * threshold + [
        LoginResult.LOCKED,
        LoginResult.SUCCESS,
        LoginResult.LOGOUT,
    ]
    for event in events:
        assert event.user_id == user.pk, event.result
        assert event.email == user.email
        assert event.user_agent == "RigBrowser/7 (audit test)"
        assert event.method == "password"


def _counter(client: Client, result: str, method: str = "password") -> float:
    text = client.get("/metrics").content.decode()
    match = re.search(
        rf'^rigwarden_login_attempts_total\{{(?=[^}}]*method="{method}")(?=[^}}]*result="{result}")[^}}]*\}} ([0-9.e+]+)$',
        text,
        flags=re.M,
    )
    return float(match.group(1)) if match else 0.0


def test_login_counters_move_in_metrics(user: User, ip: str) -> None:
    client = browser(ip)
    before = {r: _counter(client, r) for r in ("success", "failure", "locked")}
    fail(client, user.email, settings.LOGIN_LOCKOUT_THRESHOLD)
    sign_in(client, user.email, PASSWORD)
    after = {r: _counter(client, r) for r in ("success", "failure", "locked")}
    assert after["failure"] - before["failure"] == settings.LOGIN_LOCKOUT_THRESHOLD
    assert after["locked"] - before["locked"] == 1
    expire_locks()
    sign_in(browser(ip), user.email, PASSWORD)
    assert _counter(client, "success") - after["success"] == 1


def test_inactive_user_cannot_sign_in(user: User, ip: str) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)
    client = browser(ip)
    response = sign_in(client, user.email, PASSWORD)
    assert not is_signed_in(client)
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert response["Location"].startswith("/accounts/inactive/")


@pytest.mark.parametrize(
    "data",
    [
        {"login": "", "password": ""},
        {"login": "x" * 5000 + "@example.com", "password": "p"},
        {"login": "a@b.example", "password": "p" * 100_000},
        {"login": "owner@alpha.example\x00", "password": PASSWORD},
        {"login": ["a", "b"], "password": PASSWORD},
    ],
    ids=["empty", "huge-login", "huge-password", "nul-byte", "list"],
)
def test_garbage_on_the_sign_in_form_is_a_form_error(
    org_a: OrgWorld, ip: str, data: dict[str, object]
) -> None:
    client = browser(ip)
    token = client.get("/accounts/login/") and client.cookies["csrftoken"].value
    response = client.post("/accounts/login/", {**data, "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert not is_signed_in(client)


def test_sign_in_form_needs_csrf(user: User, ip: str) -> None:
    client = browser(ip)
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert not is_signed_in(client)
