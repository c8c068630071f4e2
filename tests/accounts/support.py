"""Helpers shared by the accounts suites (sign-in state, invitations, org-bound tokens)."""

from __future__ import annotations

from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.models import ApiToken, Membership, Role, User
from accounts.services.tokens import api_token_create
from tests.accounts.conftest import csrf_token
from tests.conftest import OrgWorld

NEW_PASSWORD = "a-brand-new-passphrase-42"


def invite(client: Any, world: OrgWorld, email: str, role: str = "viewer", path: str = "") -> Any:
    return client.post(
        path or "/api/v1/invitations/",
        {"org": world.org.pk, "email": email, "role": role},
        format="json",
    )


def is_signed_in(client: Client) -> bool:
    """Whether the client's session holds a signed-in user (not merely a half-done MFA step)."""
    return "_auth_user_id" in client.session


def link_path(url: str) -> str:
    return url.replace("http://testserver", "")


def accept_new(client: Client, path: str, password: str = NEW_PASSWORD) -> Any:
    token = csrf_token(client, path)
    return client.post(
        path,
        {
            "full_name": "New Person",
            "password1": password,
            "password2": password,
            "csrfmiddlewaretoken": token,
        },
    )


SAME_SHAPE = {
    "id",
    "org",
    "email",
    "full_name",
    "role",
    "state",
    "invited_by",
    "created_at",
    "sent_at",
    "expires_at",
    "responded_at",
    "accept_url",
    "email_sent",
}


def two_org_person(org_a: OrgWorld, org_b: OrgWorld) -> tuple[User, ApiToken, ApiToken]:
    person = org_a.users["operator"]
    Membership.unscoped.create(
        user=person, org=org_b.org, role=Role.unscoped.get(slug="admin", org=None)
    )
    actor = Actor.for_user(person)
    in_a = api_token_create(actor=actor, user=person, org=org_a.org, name="a").token
    in_b = api_token_create(actor=actor, user=person, org=org_b.org, name="b").token
    return person, in_a, in_b


def token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def issued_secret(user: User, name: str = "contract") -> str:
    """A new token's secret, asked for through the API the way a person does."""
    from tests.conftest import api_client_for

    response = api_client_for(user).post("/api/v1/tokens/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["token"])
