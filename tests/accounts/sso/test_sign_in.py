"""``sso_sign_in``: identity on issuer + subject, linking, JIT, seats and claim-mapped roles."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.models import (
    ActivityEvent,
    LoginEvent,
    LoginMethod,
    LoginResult,
    Membership,
    Role,
    SiteRoleAssignment,
    SsoIdentity,
    SsoRoleMapping,
    SsoSeatLimit,
    User,
)
from accounts.sso.services import Attempt, SignIn, sso_sign_in
from tests.conftest import OrgWorld

ISSUER = "http://127.0.0.2:9"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sso(settings: Any) -> None:
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_CLIENT_ID = "rw"
    settings.OIDC_ORG = "alpha"
    settings.OIDC_JIT = False


def role(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org__isnull=True)


def sign_in(subject: str, email: str, verified: bool = True, **claims: Any) -> SignIn:
    return sso_sign_in(
        Attempt(
            ISSUER, subject, {"sub": subject, "email": email, "email_verified": verified, **claims}
        )
    )


def map_group(world: OrgWorld, value: str, slug: str, **extra: Any) -> SsoRoleMapping:
    return SsoRoleMapping.unscoped.create(
        org=world.org, claim="groups", value=value, role=role(slug), **extra
    )


def test_a_verified_email_links_a_precreated_account_once(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    result = sign_in("s-1", user.email)
    assert result.refusal is None and result.user == user
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (ISSUER, "s-1")
    # later logins are keyed on issuer + subject, whatever the e-mail claim says now
    again = sign_in("s-1", "renamed@elsewhere.example", verified=False)
    assert again.user == user and again.refusal is None


def test_an_unverified_email_never_links_an_existing_account(org_a: OrgWorld) -> None:
    result = sign_in("attacker", org_a.users["owner"].email, verified=False)
    assert result.refusal is not None and result.refusal.reason == "unverified_email"
    assert result.user is None
    assert not SsoIdentity.objects.exists()
    event = LoginEvent.objects.get(result=LoginResult.REFUSED)
    assert (event.method, event.sso_issuer, event.sso_subject) == (
        LoginMethod.SSO,
        ISSUER,
        "attacker",
    )


def test_a_second_subject_with_the_same_email_is_refused(org_a: OrgWorld) -> None:
    email = org_a.users["viewer"].email
    assert sign_in("first", email).refusal is None
    second = sign_in("second", email)
    assert second.refusal is not None and second.refusal.reason == "conflict"
    assert SsoIdentity.objects.count() == 1


def test_issuer_and_subject_are_unique(org_a: OrgWorld) -> None:
    SsoIdentity.objects.create(user=org_a.users["viewer"], issuer=ISSUER, subject="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        SsoIdentity.objects.create(user=org_a.users["admin"], issuer=ISSUER, subject="x")
    # the same subject at another provider is another person
    SsoIdentity.objects.create(
        user=org_a.users["admin"], issuer="https://other.example", subject="x"
    )


def test_without_jit_unknown_people_are_refused(org_a: OrgWorld) -> None:
    map_group(org_a, "ops", "operator")
    result = sign_in("new", "new@alpha.example", groups=["ops"])
    assert result.refusal is not None and result.refusal.reason == "no_account"
    assert not User.objects.filter(email="new@alpha.example").exists()


def test_jit_creates_the_account_with_the_mapped_role(settings: Any, org_a: OrgWorld) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "ops", "operator")
    result = sign_in("new", "New@Alpha.example", groups=["ops"], name="New Person")
    assert result.refusal is None and result.user is not None
    assert result.user.email == "new@alpha.example" and result.user.full_name == "New Person"
    assert not result.user.has_usable_password()
    assert Membership.unscoped.get(user=result.user, org=org_a.org).role.slug == "operator"
    assert ActivityEvent.unscoped.filter(org=org_a.org, verb="member.join").exists()


def test_jit_without_a_mapped_role_creates_nothing(settings: Any, org_a: OrgWorld) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "ops", "operator")
    result = sign_in("new", "new@alpha.example", groups=["marketing"])
    assert result.refusal is not None and result.refusal.reason == "no_role"
    assert result.refusal.seen == {"groups": ["marketing"]}
    assert not User.objects.filter(email="new@alpha.example").exists()


def test_jit_needs_a_verified_email(settings: Any, org_a: OrgWorld) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "ops", "operator")
    result = sign_in("new", "new@alpha.example", verified=False, groups=["ops"])
    assert result.refusal is not None and result.refusal.reason == "unverified_email"


def test_disabled_users_are_refused(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    SsoIdentity.objects.create(user=user, issuer=ISSUER, subject="op")
    User.objects.filter(pk=user.pk).update(is_active=False)
    result = sign_in("op", user.email)
    assert result.refusal is not None and result.refusal.reason == "disabled"


def test_roles_follow_the_claims_at_every_login(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    rule = map_group(org_a, "ops", "operator")
    map_group(org_a, "leads", "admin", priority=10)
    site_rule = map_group(org_a, "north", "field_tech", site=org_a.sites[0])
    sign_in("v", user.email, groups=["ops", "north"])
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "operator"
    assert SiteRoleAssignment.unscoped.get(user=user).role.slug == "field_tech"
    sign_in("v", user.email, groups=["ops", "leads"])
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "admin"
    assert not SiteRoleAssignment.unscoped.filter(user=user).exists()
    rule.delete()
    site_rule.delete()
    result = sign_in("v", user.email, groups=["ops"])  # no rule matches any more
    assert not Membership.unscoped.filter(user=user, org=org_a.org).exists()
    assert result.refusal is not None and result.refusal.reason == "no_role"


def test_an_org_without_rules_keeps_its_roles(org_a: OrgWorld) -> None:
    user = org_a.users["admin"]
    assert sign_in("a", user.email, groups=[]).refusal is None
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "admin"


def test_the_last_owner_is_never_demoted(org_a: OrgWorld) -> None:
    owner = org_a.users["owner"]
    map_group(org_a, "ops", "viewer")
    assert sign_in("o", owner.email, groups=["ops"]).refusal is None
    assert Membership.unscoped.get(user=owner, org=org_a.org).role.slug == "owner"


def test_another_orgs_rules_never_pull_people_in(org_a: OrgWorld, org_b: OrgWorld) -> None:
    map_group(org_b, "ops", "owner")
    user = org_a.users["viewer"]
    sign_in("v", user.email, groups=["ops"])
    assert not Membership.unscoped.filter(user=user, org=org_b.org).exists()
    # but they do apply where the person already is a member
    Membership.unscoped.create(user=user, org=org_b.org, role=role("viewer"))
    sign_in("v", user.email, groups=["ops"])
    assert Membership.unscoped.get(user=user, org=org_b.org).role.slug == "owner"
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "viewer"


def test_the_seat_limit_refuses_a_new_member_and_says_so(settings: Any, org_a: OrgWorld) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "ops", "operator")
    SsoSeatLimit.unscoped.create(
        org=org_a.org, seats=Membership.unscoped.filter(org=org_a.org).count()
    )
    result = sign_in("new", "new@alpha.example", groups=["ops"])
    assert result.refusal is not None and result.refusal.reason == "seat_limit"
    assert "all 5 of its seats" in result.refusal.message
    assert not User.objects.filter(email="new@alpha.example").exists()
    event = ActivityEvent.unscoped.get(org=org_a.org, verb="sso.seat_limit")
    assert event.result == "failed" and event.details["seats"] == 5
    # existing members still sign in
    assert sign_in("v", org_a.users["viewer"].email, groups=["ops"]).refusal is None


@pytest.mark.django_db(transaction=True)
def test_two_logins_racing_for_the_last_seat_get_one(settings: Any, org_a: OrgWorld) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "ops", "operator")
    SsoSeatLimit.unscoped.create(org=org_a.org, seats=6)
    barrier = threading.Barrier(2)
    results: list[SignIn] = []

    def race(n: int) -> None:
        try:
            barrier.wait(timeout=5)
            results.append(sign_in(f"racer-{n}", f"racer{n}@alpha.example", groups=["ops"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(r.refusal.reason if r.refusal else "ok" for r in results) == ["ok", "seat_limit"]
    assert Membership.unscoped.filter(org=org_a.org).count() == 6
