"""The org's single sign-on page, the admin and the mapping services, across two orgs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.actor import Actor
from accounts.errors import ApplicationError, Forbidden
from accounts.models import ActivityEvent, Role, SsoRoleMapping, SsoSeatLimit, User
from accounts.sso.mappings import sso_mapping_create, sso_mapping_delete, sso_seat_limit_set
from tests.conftest import OrgWorld

pytestmark = pytest.mark.django_db


def role(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org__isnull=True)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rule(world: OrgWorld, value: str, slug: str = "viewer") -> SsoRoleMapping:
    return SsoRoleMapping.unscoped.create(
        org=world.org, claim="groups", value=value, role=role(slug)
    )


def test_members_see_their_orgs_rules_only(org_a: OrgWorld, org_b: OrgWorld) -> None:
    rule(org_a, "alpha-ops")
    rule(org_b, "bravo-secret")
    page = signed_in(org_a.users["viewer"]).get("/users/sso/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "alpha-ops" in text and "bravo-secret" not in text
    assert "Add rule" not in text  # a viewer reads, doesn't write
    admin_page = signed_in(org_a.users["admin"]).get("/users/sso/").content.decode()
    assert "Add rule" in admin_page
    # the form offers this org's sites only
    assert org_a.sites[0].name in admin_page and org_b.sites[0].name not in admin_page


def test_an_admin_adds_and_deletes_a_rule_through_the_page(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    response = client.post(
        "/users/sso/rules/",
        {
            "claim": "realm_access.roles",
            "value": "fleet-ops",
            "role": role("operator").pk,
            "priority": 5,
        },
    )
    assert response.status_code == 302
    mapping = SsoRoleMapping.unscoped.get(org=org_a.org)
    assert (mapping.claim, mapping.value, mapping.role.slug, mapping.priority) == (
        "realm_access.roles",
        "fleet-ops",
        "operator",
        5,
    )
    assert ActivityEvent.unscoped.filter(org=org_a.org, verb="sso_mapping.create").exists()
    assert client.post(f"/users/sso/rules/{mapping.pk}/delete/").status_code == 302
    assert not SsoRoleMapping.unscoped.exists()


def test_bad_input_is_a_form_error_not_a_500(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    for data in (
        {"claim": "bad path!", "value": "x", "role": role("viewer").pk, "priority": 1},
        {"claim": "groups", "value": "", "role": role("viewer").pk, "priority": 1},
        {"claim": "groups", "value": "x", "role": "999999", "priority": 1},
        {"claim": "groups", "value": "x", "role": role("viewer").pk, "priority": -4},
        {"claim": "a..b", "value": "x", "role": role("viewer").pk, "priority": 1},
    ):
        response = client.post("/users/sso/rules/", data)
        assert response.status_code == 200, data
        assert b'class="error"' in response.content or b"alert-error" in response.content
    assert not SsoRoleMapping.unscoped.exists()


def test_another_orgs_rule_is_a_404_and_its_site_no_choice(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    theirs = rule(org_b, "bravo-ops")
    client = signed_in(org_a.users["admin"])
    assert client.post(f"/users/sso/rules/{theirs.pk}/delete/").status_code == 404
    response = client.post(
        "/users/sso/rules/",
        {
            "claim": "groups",
            "value": "x",
            "role": role("viewer").pk,
            "site": org_b.sites[0].pk,
            "priority": 1,
        },
    )
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert SsoRoleMapping.unscoped.filter(org=org_b.org).count() == 1


def test_writes_need_user_manage_and_nobody_maps_more_than_they_hold(org_a: OrgWorld) -> None:
    assert signed_in(org_a.users["viewer"]).post("/users/sso/rules/", {}).status_code == 403
    with pytest.raises(Forbidden):
        sso_mapping_create(
            actor=Actor.for_user(org_a.users["operator"]),
            org=org_a.org,
            claim="groups",
            value="x",
            role=role("viewer"),
        )
    with pytest.raises(ApplicationError):  # an admin can't hand out owner (org:manage)
        sso_mapping_create(
            actor=Actor.for_user(org_a.users["admin"]),
            org=org_a.org,
            claim="groups",
            value="x",
            role=role("owner"),
        )
    owner_rule = rule(org_a, "owners", "owner")
    with pytest.raises(ApplicationError):
        sso_mapping_delete(actor=Actor.for_user(org_a.users["admin"]), mapping=owner_rule)
    assert ActivityEvent.unscoped.filter(verb="sso_mapping.create", result="failed").exists()


def test_a_rule_is_unique_per_claim_value_and_site(org_a: OrgWorld) -> None:
    owner = Actor.for_user(org_a.users["owner"])
    kwargs: dict[str, Any] = {"actor": owner, "org": org_a.org, "claim": "groups", "value": "x"}
    sso_mapping_create(role=role("viewer"), **kwargs)
    with pytest.raises(ApplicationError, match="already a rule"):
        sso_mapping_create(role=role("admin"), **kwargs)
    sso_mapping_create(role=role("admin"), site=org_a.sites[0], **kwargs)  # a site is another rule


def test_the_seat_limit_is_for_owners(org_a: OrgWorld, org_b: OrgWorld) -> None:
    assert (
        signed_in(org_a.users["admin"]).post("/users/sso/seats/", {"seats": 3}).status_code == 403
    )
    client = signed_in(org_a.users["owner"])
    assert client.post("/users/sso/seats/", {"seats": 3}).status_code == 302
    assert SsoSeatLimit.unscoped.get(org=org_a.org).seats == 3
    assert client.post("/users/sso/seats/", {"seats": 0}).status_code == 200  # a form error
    assert client.post("/users/sso/seats/", {"seats": ""}).status_code == 302  # no limit
    assert not SsoSeatLimit.unscoped.exists()
    with pytest.raises(Forbidden):
        sso_seat_limit_set(actor=Actor.for_user(org_a.users["owner"]), org=org_b.org, seats=2)


def test_the_admin_lists_rules_and_identities_of_its_orgs_only(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    rule(org_a, "alpha-ops")
    rule(org_b, "bravo-secret")
    staff = org_a.users["admin"]
    staff.is_staff = True
    staff.save()
    client = signed_in(staff)
    for model in ("ssorolemapping", "ssoidentity", "ssoseatlimit"):
        assert client.get(f"/admin/accounts/{model}/").status_code == 200, model
    text = client.get("/admin/accounts/ssorolemapping/").content.decode()
    assert "alpha-ops" in text and "bravo-secret" not in text
    assert client.get("/admin/accounts/ssorolemapping/add/").status_code == 403


def test_the_admin_deletes_rules_through_the_service(org_a: OrgWorld) -> None:
    mapping = rule(org_a, "alpha-ops")
    superuser = User.objects.create_superuser(
        email="root@example.com", password="x-long-password-1"
    )
    client = signed_in(superuser)
    response = client.post(
        "/admin/accounts/ssorolemapping/",
        {"action": "delete_rules", "_selected_action": [mapping.pk]},
    )
    assert response.status_code == 302
    assert not SsoRoleMapping.unscoped.exists()
    assert ActivityEvent.unscoped.filter(verb="sso_mapping.delete").exists()


def test_the_page_speaks_sentence_case_and_htmx_gets_the_fragment(org_a: OrgWorld) -> None:
    from tests.accounts.test_pages_ux import html, title_case

    rule(org_a, "alpha-ops")
    client = signed_in(org_a.users["owner"])
    page = client.get("/users/sso/")
    assert title_case(html(page)) == []
    assert 'aria-current="page"' in page.content.decode().split("Single sign-on</a>")[0][-300:]
    fragment = client.post(
        "/users/sso/rules/",
        {"claim": "groups", "value": "more", "role": role("viewer").pk, "priority": 1},
        HTTP_HX_REQUEST="true",
    )
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="sso-rules">') and "more" in body
