"""Members: people, their org roles and site roles. Invitations are in ``invitations``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import (
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
    forget_grants,
)
from accounts.services.activity import activity_record, records_refusals
from accounts.services.roles import check_can_grant


def clean_email(email: str) -> str:
    value = (email or "").strip().lower()
    # The validator allows 320 characters; the column holds 254 (PostgreSQL would refuse it).
    limit = User._meta.get_field("email").max_length or 254
    if len(value) > limit:
        raise ApplicationError(f"At most {limit} characters.", field="email")
    try:
        validate_email(value)
    except ValidationError as exc:
        raise ApplicationError("Enter a valid e-mail address.", field="email") from exc
    return value


def check_role_grantable(actor: Actor, role: Role, org_id: int, site_id: int | None = None) -> None:
    """The role must be the org's (or built-in), and nobody hands out more than they hold
    there — at ``site_id`` when the grant is for one site."""
    if role.org_id not in (None, org_id):
        raise ApplicationError("That role belongs to another organization.", field="role")
    check_can_grant(
        actor=actor,
        org_id=org_id,
        site_id=site_id,
        permissions=role.permissions,
        what=f"the role '{role.name}'",
        field="role",
    )


def is_last_owner(membership: Membership) -> bool:
    """Whether ``membership`` is the org's only owner (so it can't be removed or demoted)."""
    return (
        membership.role.slug == "owner"
        and membership.role.org_id is None
        and not Membership.unscoped.filter(
            org_id=membership.org_id, role__slug="owner", role__org__isnull=True
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def _lock_org(org_id: int) -> None:
    """Owner counts are read under a lock on the org row, so two owners demoting each other at
    once can't both succeed."""
    Organization.unscoped.select_for_update().filter(pk=org_id).first()


def password_problems(password: str, *, email: str, full_name: str = "") -> list[str]:
    """What the password validators say about ``password`` (empty when it passes)."""
    from django.contrib.auth.password_validation import validate_password

    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        return list(exc.messages)
    return []


@transaction.atomic
def user_create(
    *,
    actor: Actor,
    email: str,
    password: str | None = None,
    full_name: str = "",
    enforce_password_policy: bool = True,
    is_staff: bool = False,
) -> User:
    """``enforce_password_policy=False`` is for operators at the server's shell, who may set what
    they like (as Django's createsuperuser allows); every web and API path enforces it."""
    email = clean_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError("A user with this e-mail address already exists.", field="email")
    if password and enforce_password_policy:
        problems = password_problems(password, email=email, full_name=full_name)
        if problems:
            raise ApplicationError(" ".join(problems), field="password")
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email, password=password, full_name=full_name[:150], is_staff=is_staff
            )
    except IntegrityError as exc:
        raise ApplicationError(
            "A user with this e-mail address already exists.", field="email"
        ) from exc
    activity_record(actor=actor, verb="user.create", target=user)
    return user


def membership_add(*, actor: Actor, org: Organization, user: User, role: Role) -> Membership:
    """Called inside an authorized transaction (accepted invitation, management command)."""
    membership, created = Membership.unscoped.get_or_create(
        user=user, org=org, defaults={"role": role}
    )
    if not created:
        raise ApplicationError("This person is already a member.", field="email")
    forget_grants(user)
    activity_record(
        actor=actor,
        verb="member.join",
        org=org,
        target=membership,
        target_label=user.email,
        details={"role": role.slug},
    )
    return membership


@records_refusals("member.role_change")
@transaction.atomic
def membership_update(*, actor: Actor, membership: Membership, role: Role) -> Membership:
    authorize(actor, "user:manage", membership.org_id)
    _lock_org(membership.org_id)
    membership = (
        Membership.unscoped.select_for_update().select_related("role", "user").get(pk=membership.pk)
    )
    if membership.role_id == role.pk:
        return membership  # nothing changes, nothing to record
    check_role_grantable(actor, role, membership.org_id)
    check_role_grantable(actor, membership.role, membership.org_id)
    if role.slug != "owner" and is_last_owner(membership):
        raise ApplicationError("The organization needs at least one owner.", field="role")
    before = membership.role.slug
    membership.role = role
    membership.save(update_fields=["role"])
    forget_grants(membership.user)
    activity_record(
        actor=actor,
        verb="member.role_change",
        org=membership.org_id,
        target=membership,
        target_label=membership.user.email,
        details={"from": before, "to": role.slug},
    )
    return membership


@records_refusals("member.remove")
@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    authorize(actor, "user:manage", membership.org_id)
    _lock_org(membership.org_id)
    if is_last_owner(membership):
        raise ApplicationError("The last owner can't be removed.")
    check_role_grantable(actor, membership.role, membership.org_id)
    SiteRoleAssignment.unscoped.filter(
        user_id=membership.user_id, site__org_id=membership.org_id
    ).delete()
    # The person's tokens for this org die with the membership.
    from accounts.models import ApiToken

    ApiToken.unscoped.filter(user_id=membership.user_id, org_id=membership.org_id).delete()
    activity_record(
        actor=actor,
        verb="member.remove",
        org=membership.org_id,
        target=membership,
        target_label=membership.user.email,
    )
    membership.delete()


@records_refusals("site_role.assign")
@transaction.atomic
def site_role_assign(*, actor: Actor, site: Site, user: User, role: Role) -> SiteRoleAssignment:
    authorize(actor, "user:manage", site.org_id, site.pk)
    if not Membership.unscoped.filter(user=user, org_id=site.org_id).exists():
        raise ApplicationError(
            "Only members of the site's organization can get a site role.", field="user"
        )
    check_role_grantable(actor, role, site.org_id, site.pk)
    existing = SiteRoleAssignment.unscoped.filter(user=user, site=site).first()
    if existing is not None and existing.role_id == role.pk:
        return existing
    if existing is not None:
        check_role_grantable(actor, existing.role, site.org_id, site.pk)
    assignment, _ = SiteRoleAssignment.unscoped.update_or_create(
        user=user, site=site, defaults={"role": role}
    )
    forget_grants(user)
    activity_record(
        actor=actor,
        verb="site_role.assign",
        org=site.org_id,
        site=site,
        target=assignment,
        target_label=f"{user.email} @ {site.name}",
        details={"role": role.slug},
    )
    return assignment


@records_refusals("site_role.remove")
@transaction.atomic
def site_role_remove(*, actor: Actor, assignment: SiteRoleAssignment) -> None:
    authorize_on(actor, "user:manage", assignment)
    check_role_grantable(actor, assignment.role, assignment.site.org_id, assignment.site_id)
    activity_record(
        actor=actor,
        verb="site_role.remove",
        org=assignment.site.org_id,
        site=assignment.site_id,
        target=assignment,
        target_label=f"{assignment.user.email} @ {assignment.site.name}",
    )
    forget_grants(assignment.user)
    assignment.delete()
