"""The Django admin: every list loads, staff see only their orgs, tokens can be revoked."""

from __future__ import annotations

import pytest

from accounts.actor import Actor
from accounts.models import ActivityEvent, ApiToken, User
from accounts.services.tokens import api_token_create
from tests.conftest import OrgWorld

MODELS = [
    "user",
    "organization",
    "site",
    "role",
    "membership",
    "siteroleassignment",
    "apitoken",
    "activityevent",
    "loginevent",
    "trackedsession",
]


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser(email="root@example.com", password="x-very-long-password")


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_loads_with_search(
    client, superuser: User, org_a: OrgWorld, model: str
) -> None:
    client.force_login(superuser)
    assert client.get(f"/admin/accounts/{model}/").status_code == 200
    assert client.get(f"/admin/accounts/{model}/?q=alpha").status_code == 200


def test_anonymous_admin_goes_to_the_one_sign_in_page(client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    login = client.get(response["Location"])
    assert login.status_code == 302 and login["Location"].startswith("/accounts/login/")


def test_staff_member_sees_only_their_orgs(client, org_a: OrgWorld, org_b: OrgWorld) -> None:
    from django.contrib.auth.models import Permission

    admin_user = org_a.users["admin"]
    admin_user.is_staff = True
    admin_user.save()
    admin_user.user_permissions.add(*Permission.objects.filter(content_type__app_label="accounts"))
    client.force_login(admin_user)
    page = client.get("/admin/accounts/site/").content.decode()
    assert org_a.sites[0].name in page and org_b.sites[0].name not in page
    assert (
        client.get(f"/admin/accounts/site/{org_b.sites[0].pk}/change/").status_code == 302
    )  # not found → redirect


def test_revoke_action_revokes_and_is_audited(client, superuser: User, org_a: OrgWorld) -> None:
    issued = api_token_create(actor=Actor.system("t"), user=org_a.users["viewer"], name="ci")
    client.force_login(superuser)
    response = client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [issued.token.pk]},
    )
    assert response.status_code == 302
    assert ApiToken.unscoped.get(pk=issued.token.pk).revoked_at is not None
    assert ActivityEvent.unscoped.filter(verb="apikey.revoke", actor_user=superuser).exists()


def test_activity_is_read_only(client, superuser: User, org_a: OrgWorld) -> None:
    client.force_login(superuser)
    event = ActivityEvent.unscoped.first() or ActivityEvent.unscoped.create(
        actor_type="system", actor_label="t", verb="x"
    )
    assert client.get("/admin/accounts/activityevent/add/").status_code == 403
    assert (
        client.post(
            f"/admin/accounts/activityevent/{event.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )


def test_admin_edit_is_audited(client, superuser: User, org_a: OrgWorld) -> None:
    client.force_login(superuser)
    site = org_a.sites[0]
    response = client.post(
        f"/admin/accounts/site/{site.pk}/change/",
        {
            "org": org_a.org.pk,
            "name": "Renamed in admin",
            "slug": site.slug,
            "location": "",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ActivityEvent.unscoped.filter(verb="admin.site.change", org=org_a.org).exists()
