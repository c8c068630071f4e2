"""The API tokens page: a secret shown once, revocation, errors and scope."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from accounts.actor import Actor
from accounts.models import ApiToken
from accounts.services import tokens
from tests.accounts.pages.support import HTMX, html, signed_in
from tests.conftest import OrgWorld


def test_token_secret_is_shown_once_and_revoke_works(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    client = signed_in(user)
    response = client.post(
        "/tokens/create/", {"name": "exporter", "org": org_a.org.pk, "expires_in": "30"}, **HTMX
    )
    secret = re.search(r'value="(rw_[^"]+)"', html(response))
    assert secret, html(response)
    token = ApiToken.unscoped.get(user=user, name="exporter")
    assert token.token_hash != secret.group(1) and secret.group(1) not in token.token_hash
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    listing = html(client.get("/tokens/"))
    assert secret.group(1) not in listing and f"rw_{token.prefix}_" in listing
    revoked = client.post(f"/tokens/{token.pk}/revoke/", **HTMX)
    assert "Revoked" in html(revoked)
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_errors_and_scope(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    assert "This field is required" in html(client.post("/tokens/create/", {"name": ""}, **HTMX))
    other = tokens.api_token_create(
        actor=Actor.system(), user=org_a.users["viewer"], name="theirs"
    ).token
    foreign = tokens.api_token_create(
        actor=Actor.system(), user=org_b.users["owner"], name="foreign"
    ).token
    assert client.post(f"/tokens/{other.pk}/revoke/").status_code == 404
    assert client.post(f"/tokens/{foreign.pk}/revoke/").status_code == 404
    assert (
        ApiToken.unscoped.filter(revoked_at__isnull=True, pk__in=[other.pk, foreign.pk]).count()
        == 2
    )
    assert "theirs" not in html(client.get("/tokens/"))
