"""API tokens: shown once, stored hashed, never more than the owner holds right now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ActivityEvent, ApiToken, Membership, Role, User
from tests.conftest import OrgWorld, api_client_for, make_user


def create_token(user: User, name: str = "ci", **extra: Any) -> dict[str, Any]:
    response = api_client_for(user).post("/api/v1/tokens/", {"name": name, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def with_token(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def test_secret_is_shown_once_and_only_its_hash_is_stored(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    created = create_token(user)
    secret = created["token"]
    assert secret.startswith("rw_") and created["prefix"] in secret

    row = ApiToken.unscoped.get(pk=created["id"])
    stored = [
        str(v)
        for v in ApiToken.unscoped.filter(pk=row.pk)
        .values_list(*[f.attname for f in ApiToken._meta.concrete_fields])
        .get()
    ]
    assert not any(secret in v or secret.split("_", 2)[2] in v for v in stored), (
        "the secret is stored"
    )
    assert len(row.token_hash) == 64 and row.token_hash != secret

    client = api_client_for(user)
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["prefix"] for t in listed] == [created["prefix"]]
    assert all("token" not in t and secret not in str(t) for t in listed)
    detail = client.get(f"/api/v1/tokens/{row.pk}/").json()
    assert "token" not in detail and secret not in str(detail)


def test_token_authenticates_as_its_owner(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    secret = create_token(user)["token"]
    me = with_token(secret).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == user.email
    row = ApiToken.unscoped.get(user=user)
    assert row.last_used_at is not None


def test_expired_token_is_refused(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    soon = timezone.now() + timedelta(minutes=5)
    created = create_token(user, expires_at=soon.isoformat())
    client = with_token(created["token"])
    assert client.get("/api/v1/me/").status_code == 200
    ApiToken.unscoped.filter(pk=created["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/api/v1/me/").status_code == 401


def test_expiry_in_the_past_is_a_400(org_a: OrgWorld) -> None:
    response = api_client_for(org_a.users["viewer"]).post(
        "/api/v1/tokens/", {"name": "old", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()


def test_revocation_is_immediate(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    created = create_token(user)
    client = with_token(created["token"])
    assert client.get("/api/v1/sites/").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert client.get("/api/v1/sites/").status_code == 401
    assert api_client_for(user).get(f"/api/v1/tokens/{created['id']}/").json()["state"] == "revoked"


def test_token_loses_access_with_its_owners_membership(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    client = with_token(create_token(user)["token"])
    site = org_a.sites[0]
    assert client.get(f"/api/v1/sites/{site.pk}/").status_code == 200

    Membership.unscoped.filter(user=user).update(
        role=Role.unscoped.get(slug="field_tech", org=None)
    )
    assert (
        client.get(f"/api/v1/sites/{site.pk}/").status_code == 200
    )  # field_tech still reads sites
    assert (
        client.patch(f"/api/v1/sites/{site.pk}/", {"name": "x"}, format="json").status_code == 403
    )

    Membership.unscoped.filter(user=user).delete()
    # out of the token's org: the token itself is dead (401), not just empty
    assert client.get(f"/api/v1/sites/{site.pk}/").status_code == 401


def test_token_never_exceeds_what_the_owner_holds_now(org_a: OrgWorld) -> None:
    owner = org_a.users["owner"]
    client = with_token(create_token(owner)["token"])
    org = org_a.org
    assert (
        client.patch(f"/api/v1/orgs/{org.pk}/", {"name": "Alpha 2"}, format="json").status_code
        == 200
    )
    Membership.unscoped.create(
        user=make_user("owner2@alpha.example"),
        org=org,
        role=Role.unscoped.get(slug="owner", org=None),
    )
    Membership.unscoped.filter(user=owner).update(role=Role.unscoped.get(slug="admin", org=None))
    assert (
        client.patch(f"/api/v1/orgs/{org.pk}/", {"name": "Alpha 3"}, format="json").status_code
        == 403
    )


def test_deactivated_users_token_fails(org_a: OrgWorld) -> None:
    user = org_a.users["admin"]
    client = with_token(create_token(user)["token"])
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token ",
        "Token a b",
        "Token rw_",
        "Token rw_zzzzzzzzzzzz_" + "a" * 43,
        "Token rw_\x00abc_def",
        "Token rw_0123456789ab_" + "a" * 5000,
        "Token ünïcödé",
        "token lowercase-keyword",
        "Bearer something",
        "Basic Zm9vOmJhcg==",
        "Token " + "x" * 10_000,
    ],
)
def test_malformed_headers_are_401_not_500(db: None, header: str) -> None:
    client = APIClient()
    response = client.get(
        "/api/v1/me/", HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1")
    )
    assert response.status_code == 401, (header[:40], response.status_code)


def test_a_right_prefix_with_a_wrong_secret_is_refused(org_a: OrgWorld) -> None:
    created = create_token(org_a.users["viewer"])
    forged = created["token"][:-4] + ("AAAA" if not created["token"].endswith("AAAA") else "BBBB")
    assert with_token(forged).get("/api/v1/me/").status_code == 401


def test_others_tokens_need_apikey_manage_in_the_owners_org(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    victim = org_a.users["field_tech"]
    token_id = create_token(victim)["id"]

    for role in ("operator", "viewer"):
        client = api_client_for(org_a.users[role])
        assert token_id not in [t["id"] for t in client.get("/api/v1/tokens/").json()["results"]]
        assert client.delete(f"/api/v1/tokens/{token_id}/").status_code == 404
    for principal in [*org_b.users.values()]:
        assert api_client_for(principal).delete(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert ApiToken.unscoped.get(pk=token_id).revoked_at is None

    admin = api_client_for(org_a.users["admin"])
    assert token_id in [t["id"] for t in admin.get("/api/v1/tokens/").json()["results"]]
    assert admin.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert ApiToken.unscoped.get(pk=token_id).revoked_at is not None


def test_token_lifecycle_is_in_the_owners_org_activity(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    created = create_token(user, name="deploy bot")
    api_client_for(user).delete(f"/api/v1/tokens/{created['id']}/")
    events = ActivityEvent.unscoped.filter(
        org=org_a.org, target_type="apikey", target_id=str(created["id"])
    )
    assert sorted(events.values_list("verb", flat=True)) == ["apikey.create", "apikey.revoke"]
    assert all(e.actor_user_id == user.pk for e in events)
    activity = (
        api_client_for(org_a.users["admin"]).get("/api/v1/activity/?verb=apikey").json()["results"]
    )
    assert {e["verb"] for e in activity} == {"apikey.create", "apikey.revoke"}


def test_an_outsider_gets_no_token(outsider: User) -> None:
    """In no org, a token would grant nothing: refused with the reason."""
    response = api_client_for(outsider).post("/api/v1/tokens/", {"name": "mine"}, format="json")
    assert response.status_code == 400 and "org" in response.json()


def test_token_name_is_required_and_bounded(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["viewer"])
    assert client.post("/api/v1/tokens/", {"name": ""}, format="json").status_code == 400
    assert client.post("/api/v1/tokens/", {"name": "x" * 5000}, format="json").status_code == 400
    assert client.post("/api/v1/tokens/", {"name": ["a"]}, format="json").status_code == 400
