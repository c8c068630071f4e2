"""Inputs the validators accept but the columns can't hold, and slugs scripts rely on verbatim."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Organization, Site, User
from tests.conftest import OrgWorld, api_client_for

# 306 characters: Django's EmailValidator allows up to 320, the column holds 254.
LONG_EMAIL = "x" * 300 + "@e.com"


def test_inviting_an_over_long_email_is_a_400_not_a_database_error(org_a: OrgWorld) -> None:
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/memberships/",
        {"org": org_a.org.pk, "email": LONG_EMAIL, "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400 and "email" in response.json(), response.content
    assert not User.objects.filter(email__startswith="xxxx").exists()


def test_create_user_refuses_an_over_long_email(org_a: OrgWorld) -> None:
    with pytest.raises(CommandError, match="email"):
        call_command(
            "create_user",
            email=LONG_EMAIL,
            password="correct-horse-battery-9",
            org=org_a.org.slug,
            role="viewer",
            stdout=io.StringIO(),
        )


@pytest.mark.parametrize("slug", ["Bad Slug!", "-edge-", "x" * 61, "ünï"])
def test_create_org_refuses_a_slug_it_would_have_to_change(db: None, slug: str) -> None:
    with pytest.raises(CommandError, match="slug"):
        call_command("create_org", name="Acme", slug=slug, stdout=io.StringIO())
    assert not Organization.unscoped.exists()


def test_create_org_and_site_keep_the_slug_given(db: None) -> None:
    call_command("create_org", name="Acme", slug="acme_2", stdout=io.StringIO())
    call_command("create_site", org="acme_2", name="North", slug="n-1", stdout=io.StringIO())
    assert Site.unscoped.get(org__slug="acme_2").slug == "n-1"


def test_slugs_are_case_insensitive_for_scripts(db: None) -> None:
    call_command("create_org", name="Acme", slug="ACME", stdout=io.StringIO())
    assert Organization.unscoped.get().slug == "acme"
    call_command("create_site", org="Acme", name="North", stdout=io.StringIO())
    assert Site.unscoped.get().org.slug == "acme"


def test_create_user_from_the_shell_warns_about_a_weak_password_but_creates(db: None) -> None:
    from accounts.models import User

    call_command("create_org", name="Acme", stdout=io.StringIO())
    err = io.StringIO()
    call_command(
        "create_user", email="ops@acme.example", password="secret", org="acme", role="owner",
        stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert "weak password" in err.getvalue()
    assert User.objects.get(email="ops@acme.example").check_password("secret")


def test_site_slug_from_the_api_is_kept_or_refused(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    refused = client.post(
        "/api/v1/sites/", {"org": org_a.org.pk, "name": "X", "slug": "Up per!"}, format="json"
    )
    assert refused.status_code == 400 and "slug" in refused.json()
    created = client.post(
        "/api/v1/sites/", {"org": org_a.org.pk, "name": "X", "slug": "lower_1"}, format="json"
    )
    assert created.status_code == 201 and created.json()["slug"] == "lower_1"
