"""SSO sign-in: who the provider's subject is here, provisioning, seats and claim-mapped roles.

``sso_sign_in`` decides every SSO login. Identity is the (issuer, subject) pair; an e-mail only
links a pre-created account the first time, and only when the provider says it is verified.
Orgs with mapping rules have their members' roles set from the claims at every login.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import (
    ActivityResult,
    ActorType,
    LoginMethod,
    LoginResult,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    SsoIdentity,
    SsoRoleMapping,
    SsoSeatLimit,
    User,
    forget_grants,
)
from accounts.services.activity import activity_record
from accounts.services.members import (
    clean_email,
    is_last_owner,
    membership_add,
    membership_remove,
    membership_update,
    site_role_assign,
    site_role_remove,
)
from accounts.services.security import login_event_record
from accounts.sso.claims import Outcome, Rule, claim_values, email_verified, evaluate


@dataclass(frozen=True)
class Refusal:
    reason: str  # disabled | unverified_email | no_account | no_role | seat_limit | conflict
    message: str
    org: str = ""
    seen: dict[str, list[str]] = field(default_factory=dict)  # the mapped claims' values


@dataclass
class SignIn:
    """The outcome: ``user`` may sign in unless ``refusal`` says why not."""

    user: User | None
    identity: SsoIdentity | None = None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Attempt:
    issuer: str
    subject: str
    claims: dict[str, Any]
    ip: str | None = None
    user_agent: str = ""

    @property
    def email(self) -> str:
        value = self.claims.get("email")
        return value.strip().lower()[:254] if isinstance(value, str) else ""

    def actor(self) -> Actor:
        return Actor(ActorType.SYSTEM, f"sso: {self.email or self.subject}"[:200], None, self.ip)


def sso_org() -> Organization | None:
    slug = str(getattr(settings, "OIDC_ORG", "") or "").strip()
    return Organization.unscoped.filter(slug__iexact=slug).first() if slug else None


def _rules(org_id: int) -> list[Rule]:
    return [
        Rule(m.claim, m.value, m.role_id, m.site_id, m.priority, m.pk)
        for m in SsoRoleMapping.unscoped.filter(org_id=org_id)
    ]


def _seen(org_id: int, claims: dict[str, Any]) -> dict[str, list[str]]:
    paths = sorted(
        set(SsoRoleMapping.unscoped.filter(org_id=org_id).values_list("claim", flat=True))
    )
    return {path: sorted(claim_values(claims, path))[:50] for path in paths}


def _refuse(attempt: Attempt, refusal: Refusal, user: User | None = None) -> SignIn:
    login_event_record(
        result=LoginResult.REFUSED,
        email=attempt.email,
        user=user,
        ip=attempt.ip,
        user_agent=attempt.user_agent,
        method=LoginMethod.SSO,
        sso_issuer=attempt.issuer,
        sso_subject=attempt.subject,
    )
    return SignIn(user, None, refusal)


def sso_sign_in(attempt: Attempt) -> SignIn:
    """Resolve, provision and map one SSO login. Writes (role changes, a seat refusal's audit
    event) are kept even when the login is then refused."""
    identity = (
        SsoIdentity.objects.select_related("user")
        .filter(issuer=attempt.issuer, subject=attempt.subject)
        .first()
    )
    user = identity.user if identity is not None else None
    if identity is None:
        found = _match_account(attempt)
        if isinstance(found, Refusal):
            return _refuse(attempt, found)
        user = found
    if user is not None and not user.is_active:
        return _refuse(attempt, Refusal("disabled", "This account is disabled here."), user)
    try:
        with transaction.atomic():
            result = _provision_and_map(attempt, user, identity)
    except IntegrityError:  # the same new identity signing in twice at the same moment
        refusal = Refusal("conflict", "Another sign-in of yours was being set up; try again.")
        return _refuse(attempt, refusal, user)
    if result.refusal is not None:
        return _refuse(attempt, result.refusal, result.user)
    return result


def _match_account(attempt: Attempt) -> User | Refusal | None:
    """An existing account to link by verified e-mail, ``None`` to provision one, or why not."""
    email = attempt.email
    existing = User.objects.filter(email__iexact=email).first() if email else None
    if existing is not None:
        if not email_verified(attempt.claims, settings.OIDC_EMAIL_VERIFIED_CLAIM):
            return Refusal(
                "unverified_email",
                f"An account for {email} exists here, but your identity provider hasn't "
                "verified that address, so single sign-on can't be linked to it. Ask an admin.",
            )
        if SsoIdentity.objects.filter(user=existing, issuer=attempt.issuer).exists():
            return Refusal(
                "conflict",
                f"The account {email} is already linked to another identity at this provider.",
            )
        return existing
    if not settings.OIDC_JIT:
        return Refusal(
            "no_account",
            f"There is no account here for {email or 'your identity'}. Ask an owner or admin "
            "to create one, then sign in with SSO again.",
        )
    if not email or not email_verified(attempt.claims, settings.OIDC_EMAIL_VERIFIED_CLAIM):
        return Refusal(
            "unverified_email",
            "Your identity provider didn't send a verified e-mail address, which a new "
            "account needs.",
        )
    try:
        clean_email(email)
    except ApplicationError:
        return Refusal("unverified_email", "Your identity provider sent an invalid e-mail.")
    return None


def _provision_and_map(attempt: Attempt, user: User | None, identity: SsoIdentity | None) -> SignIn:
    home = sso_org()
    outcomes: dict[int, Outcome] = {}
    orgs = [] if home is None else [home.pk]
    if user is not None:
        orgs += list(
            Membership.unscoped.filter(user=user)
            .exclude(org_id__in=orgs)
            .values_list("org_id", flat=True)
        )
    for org_id in orgs:
        rules = _rules(org_id)
        if rules:
            outcomes[org_id] = evaluate(rules, attempt.claims)
    if user is None:  # JIT: only someone the rules give a role gets an account
        if home is None or outcomes.get(home.pk, Outcome(None, {}, ())).org_role_id is None:
            return SignIn(None, None, _no_role(attempt, home))
        refusal = _check_seat(attempt, home)
        if refusal is not None:
            return SignIn(None, None, refusal)
        user = User.objects.create_user(
            email=attempt.email, full_name=_name(attempt.claims), password=None
        )
        activity_record(actor=attempt.actor(), verb="user.create", org=home, target=user)
    if identity is None:
        identity = SsoIdentity.objects.create(
            user=user, issuer=attempt.issuer, subject=attempt.subject
        )
        activity_record(
            actor=attempt.actor(),
            verb="sso.link",
            org=home,
            target=user,
            details={"issuer": attempt.issuer, "subject": attempt.subject},
        )
    identity.last_login_at = timezone.now()
    identity.save(update_fields=["last_login_at"])
    for org_id, outcome in outcomes.items():
        refusal = _apply(attempt, user, org_id, outcome)
        if refusal is not None:
            return SignIn(user, identity, refusal)
    forget_grants(user)
    if not Membership.unscoped.filter(user=user).exists():
        return SignIn(user, identity, _no_role(attempt, home))
    return SignIn(user, identity)


def _name(claims: dict[str, Any]) -> str:
    value = claims.get("name") or claims.get("preferred_username") or ""
    return value[:150] if isinstance(value, str) else ""


def _no_role(attempt: Attempt, org: Organization | None) -> Refusal:
    where = org.name if org is not None else "any organization here"
    return Refusal(
        "no_role",
        f"You signed in with your identity provider, but none of your groups gives you a role "
        f"in {where}, so there is nothing here for you yet. Ask an admin to map one of your "
        "groups to a role.",
        org=org.name if org is not None else "",
        seen=_seen(org.pk, attempt.claims) if org is not None else {},
    )


def _check_seat(attempt: Attempt, org: Organization) -> Refusal | None:
    """Under a lock on the org row, so two logins can't both take the last seat."""
    Organization.unscoped.select_for_update().filter(pk=org.pk).first()
    limit = SsoSeatLimit.unscoped.filter(org=org).values_list("seats", flat=True).first()
    if limit is None:
        return None
    used = Membership.unscoped.filter(org=org).count()
    if used < limit:
        return None
    # the refused login rolls nothing back: this event stays in the org's log
    activity_record(
        actor=attempt.actor(),
        verb="sso.seat_limit",
        org=org,
        target=org,
        result=ActivityResult.FAILED,
        details={"seats": limit, "used": used, "email": attempt.email},
    )
    return Refusal(
        "seat_limit",
        f"{org.name} has used all {limit} of its seats, so no new member can join. Ask an "
        "owner to free a seat or raise the limit.",
        org=org.name,
    )


def _apply(attempt: Attempt, user: User, org_id: int, outcome: Outcome) -> Refusal | None:
    """The member services do the writes (and their audit), as the system actor "sso: …"."""
    org = Organization.unscoped.get(pk=org_id)
    membership = (
        Membership.unscoped.select_related("role", "user").filter(user=user, org_id=org_id).first()
    )
    actor = attempt.actor()
    if outcome.org_role_id is None:
        if membership is not None and not is_last_owner(membership):
            membership_remove(actor=actor, membership=membership)
        return None
    role = Role.unscoped.get(pk=outcome.org_role_id)
    if membership is None:
        refusal = _check_seat(attempt, org)
        if refusal is not None:
            return refusal
        membership_add(actor=actor, org=org, user=user, role=role)
    elif membership.role_id != role.pk and not (role.slug != "owner" and is_last_owner(membership)):
        membership_update(actor=actor, membership=membership, role=role)
    _apply_sites(actor, user, org_id, outcome.site_role_ids)
    return None


def _apply_sites(actor: Actor, user: User, org_id: int, wanted: dict[int, int]) -> None:
    current = SiteRoleAssignment.unscoped.filter(user=user, site__org_id=org_id).select_related(
        "site", "role", "user"
    )
    for assignment in current:
        if assignment.site_id not in wanted:
            site_role_remove(actor=actor, assignment=assignment)
    for site_id, role_id in wanted.items():
        site_role_assign(
            actor=actor,
            site=Site.unscoped.get(pk=site_id),
            user=user,
            role=Role.unscoped.get(pk=role_id),
        )
