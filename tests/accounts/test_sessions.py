"""Server-side sessions: each sign-in is listed; revoking one really signs that browser out."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import ActivityEvent, TrackedSession, User
from accounts.services.security import session_revoke, sessions_revoke_others
from tests.accounts.conftest import browser, sign_in
from tests.conftest import PASSWORD, OrgWorld


@pytest.fixture
def user(org_a: OrgWorld) -> User:
    return org_a.users["operator"]


def signed_in_browser(user: User, ip: str, agent: str) -> Client:
    client = browser(ip, agent)
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    return client


def tracked(client: Client) -> TrackedSession:
    return TrackedSession.objects.get(session_key=client.session.session_key)


def is_signed_out(client: Client) -> bool:
    page = client.get("/")
    api = client.get("/api/v1/me/")
    return (
        page.status_code == 302
        and page["Location"].startswith("/accounts/login/")
        and api.status_code in (401, 403)
    )


def test_each_sign_in_is_tracked_with_ip_and_agent(user: User) -> None:
    laptop = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    phone = signed_in_browser(user, "10.1.0.2", "Phone/2")
    rows = {t.session_key: t for t in TrackedSession.objects.filter(user=user)}
    assert set(rows) == {laptop.session.session_key, phone.session.session_key}
    assert (rows[laptop.session.session_key].ip, rows[laptop.session.session_key].user_agent) == (
        "10.1.0.1",
        "Laptop/1",
    )
    assert (rows[phone.session.session_key].ip, rows[phone.session.session_key].user_agent) == (
        "10.1.0.2",
        "Phone/2",
    )


def test_revoking_another_session_signs_that_browser_out_on_its_next_request(user: User) -> None:
    laptop = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    stolen = signed_in_browser(user, "10.9.0.9", "Evil/6.6")

    session_revoke(actor=Actor.for_user(user), session=tracked(stolen))

    assert is_signed_out(stolen)
    assert laptop.get("/").status_code == 200
    assert not TrackedSession.objects.filter(user_agent="Evil/6.6").exists()
    assert ActivityEvent.unscoped.filter(verb="session.revoke", actor_user=user).exists()


def test_revoke_all_others_keeps_the_current_one(user: User) -> None:
    current = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    others = [signed_in_browser(user, f"10.2.0.{i}", f"Other/{i}") for i in (1, 2)]

    count = sessions_revoke_others(
        actor=Actor.for_user(user), user=user, keep_session_key=current.session.session_key
    )

    assert count == 2
    assert all(is_signed_out(c) for c in others)
    assert current.get("/").status_code == 200
    assert list(TrackedSession.objects.filter(user=user).values_list("session_key", flat=True)) == [
        current.session.session_key
    ]


def test_revoke_through_the_security_page(user: User) -> None:
    current = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    other = signed_in_browser(user, "10.1.0.2", "Other/1")
    token = current.cookies["csrftoken"].value
    response = current.post(
        reverse("session-revoke", args=[tracked(other).pk]), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code in (200, 302)
    assert is_signed_out(other)
    assert current.get("/").status_code == 200

    third = signed_in_browser(user, "10.1.0.3", "Third/1")
    response = current.post(reverse("sessions-revoke-others"), {"csrfmiddlewaretoken": token})
    assert response.status_code in (200, 302)
    assert is_signed_out(third)
    assert current.get("/").status_code == 200


def test_nobody_can_revoke_someone_elses_session(user: User, org_a: OrgWorld) -> None:
    victim = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    attacker = signed_in_browser(org_a.users["owner"], "10.1.0.7", "Owner/1")
    token = attacker.cookies["csrftoken"].value
    response = attacker.post(
        reverse("session-revoke", args=[tracked(victim).pk]), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 404
    assert victim.get("/").status_code == 200


def test_sign_out_removes_the_tracked_session(user: User) -> None:
    client = signed_in_browser(user, "10.1.0.1", "Laptop/1")
    key = client.session.session_key
    client.post("/accounts/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert not TrackedSession.objects.filter(session_key=key).exists()
    assert is_signed_out(client)


def test_sign_in_rotates_the_session_key(user: User) -> None:
    """No session fixation: the key an anonymous visitor had is not the one that gets signed in."""
    client = browser("10.1.0.1")
    client.get("/accounts/login/")
    client.session.save()
    before = client.session.session_key
    sign_in(client, user.email, PASSWORD)
    assert client.session.session_key != before
    assert tracked(client).user_id == user.pk
