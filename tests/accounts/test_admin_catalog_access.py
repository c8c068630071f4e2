"""Staff without Django model permissions see the admin through the catalog: scoped, read-only."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.test import Client

from accounts.actor import Actor
from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from tests.conftest import OrgWorld


def _staff(user: User) -> User:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def test_the_demo_owner_finds_the_admin_populated(db: None) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    client = Client()
    client.force_login(User.objects.get(email="owner@demo.rigwarden.local"))
    index = client.get("/admin/").content.decode()
    assert "permission to view or edit anything" not in index
    for model in ("user", "organization", "site", "membership", "role", "apitoken"):
        assert client.get(f"/admin/accounts/{model}/").status_code == 200, model
    assert "North Hall" in client.get("/admin/accounts/site/").content.decode()


def test_staff_owner_sees_their_org_only_and_cannot_write(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = Client()
    client.force_login(_staff(org_a.users["owner"]))
    page = client.get("/admin/accounts/site/").content.decode()
    assert org_a.sites[0].name in page and org_b.sites[0].name not in page
    mine, theirs = org_a.sites[0], org_b.sites[0]
    assert client.get(f"/admin/accounts/site/{mine.pk}/change/").status_code == 200  # view only
    assert client.get(f"/admin/accounts/site/{theirs.pk}/change/").status_code == 302  # not found
    assert client.get("/admin/accounts/site/add/").status_code == 403
    refused = client.post(
        f"/admin/accounts/site/{mine.pk}/change/", {"org": org_b.org.pk, "name": "moved"}
    )
    assert refused.status_code == 403
    mine.refresh_from_db()
    assert mine.org_id == org_a.org.pk and mine.name != "moved"


def test_staff_owner_revokes_a_member_token_from_the_admin(org_a: OrgWorld) -> None:
    issued = api_token_create(actor=Actor.system("t"), user=org_a.users["viewer"], name="ci")
    client = Client()
    client.force_login(_staff(org_a.users["owner"]))
    response = client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [issued.token.pk]},
    )
    assert response.status_code == 302
    assert ApiToken.unscoped.get(pk=issued.token.pk).revoked_at is not None


def test_staff_viewer_sees_no_login_audit_or_sessions_of_others(org_a: OrgWorld) -> None:
    client = Client()
    client.force_login(_staff(org_a.users["viewer"]))
    assert client.get("/admin/accounts/site/").status_code == 200
    assert client.get("/admin/accounts/loginevent/").status_code == 403
    assert client.get("/admin/accounts/trackedsession/").status_code == 403


def test_members_who_are_not_staff_never_reach_the_admin(org_a: OrgWorld) -> None:
    client = Client()
    client.force_login(org_a.users["owner"])
    response = client.get("/admin/accounts/site/")
    assert response.status_code == 302 and "login" in response["Location"]
