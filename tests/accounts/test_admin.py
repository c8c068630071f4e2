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


def staff_with_model_permissions(user: User) -> User:
    """The user made staff and given every Django model permission of the accounts app."""
    from django.contrib.auth.models import Permission

    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="accounts"))
    return user


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
    admin_user = staff_with_model_permissions(org_a.users["admin"])
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


def test_admin_has_no_write_forms_even_for_superusers(
    client, superuser: User, org_a: OrgWorld
) -> None:
    """Writes go through services; the admin only reads and runs service-backed actions."""
    client.force_login(superuser)
    site = org_a.sites[0]
    response = client.post(
        f"/admin/accounts/site/{site.pk}/change/", {"org": org_a.org.pk, "name": "Renamed"}
    )
    assert response.status_code == 403
    assert client.get("/admin/accounts/membership/add/").status_code == 403
    member = org_a.users["viewer"]
    page = client.get(f"/admin/accounts/user/{member.pk}/change/").content.decode()
    assert "is_superuser" not in page and "is_staff" not in page
    assert client.post(f"/admin/accounts/user/{member.pk}/password/", {}).status_code == 403


def test_staff_admin_cannot_promote_themself(client, org_a: OrgWorld, org_b: OrgWorld) -> None:
    from accounts.models import Membership

    admin_user = staff_with_model_permissions(org_a.users["admin"])
    client.force_login(admin_user)
    own = Membership.unscoped.get(user=admin_user, org=org_a.org)
    owner_role = own.role.__class__.unscoped.get(slug="owner", org=None)
    response = client.post(
        f"/admin/accounts/membership/{own.pk}/change/",
        {"user": admin_user.pk, "org": org_a.org.pk, "role": owner_role.pk},
    )
    assert response.status_code == 403
    assert Membership.unscoped.get(pk=own.pk).role.slug == "admin"
    # filters name only what is in scope: no other org's names
    page = client.get("/admin/accounts/membership/").content.decode()
    assert org_b.org.name not in page


def test_remove_member_action_goes_through_the_service(
    client, superuser: User, org_a: OrgWorld
) -> None:
    from accounts.models import Membership

    client.force_login(superuser)
    viewer = Membership.unscoped.get(user=org_a.users["viewer"], org=org_a.org)
    owner = Membership.unscoped.get(user=org_a.users["owner"], org=org_a.org)
    client.post(
        "/admin/accounts/membership/",
        {"action": "remove_members", "_selected_action": [viewer.pk, owner.pk]},
    )
    assert not Membership.unscoped.filter(pk=viewer.pk).exists()
    assert Membership.unscoped.filter(pk=owner.pk).exists()  # the last owner stays
    assert ActivityEvent.unscoped.filter(verb="member.remove", result="ok").count() == 1
    assert ActivityEvent.unscoped.filter(verb="member.remove", result="failed").count() == 1
