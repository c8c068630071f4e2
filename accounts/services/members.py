from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from accounts.actor import Actor
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
from accounts.services.activity import activity_record
from accounts.services.roles import check_can_grant


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    created_user: bool
    set_password_path: str | None


def _clean_email(email: str) -> str:
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


def _check_can_grant(actor: Actor, org_id: int, role: Role) -> None:
    """Nobody hands out more than they hold: the role must be a subset of the actor's grants."""
    check_can_grant(
        actor=actor,
        org_id=org_id,
        permissions=role.permissions,
        what=f"the role '{role.name}'",
        field="role",
    )


def _check_role_in_org(role: Role, org_id: int) -> None:
    if role.org_id not in (None, org_id):
        raise ApplicationError("That role belongs to another organization.", field="role")


def _owners_left(org_id: int, excluding: Membership) -> int:
    """Owners other than ``excluding``, counted under a lock on the org row so two owners
    demoting each other at once can't both succeed."""
    Organization.objects.select_for_update().filter(pk=org_id).first()
    return (
        Membership.objects.filter(org_id=org_id, role__slug="owner", role__org__isnull=True)
        .exclude(pk=excluding.pk)
        .count()
    )


def set_password_path(user: User) -> str:
    """A one-time link: the token dies as soon as the password changes."""
    from allauth.account.forms import default_token_generator
    from allauth.account.utils import user_pk_to_url_str

    return reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(user),
            "key": default_token_generator.make_token(user),
        },
    )


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
) -> User:
    """``enforce_password_policy=False`` is for operators at the server's shell, who may set what
    they like (as Django's createsuperuser allows); every web and API path enforces it."""
    email = _clean_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError("A user with this e-mail address already exists.", field="email")
    if password and enforce_password_policy:
        problems = password_problems(password, email=email, full_name=full_name)
        if problems:
            raise ApplicationError(" ".join(problems), field="password")
    user = User.objects.create_user(email=email, password=password, full_name=full_name[:150])

    activity_record(actor=actor, verb="user.create", target=user)
    return user


@transaction.atomic
def member_invite(
    *, actor: Actor, org: Organization, email: str, role: Role, full_name: str = ""
) -> Invitation:

    email = _clean_email(email)
    _check_role_in_org(role, org.pk)
    _check_can_grant(actor, org.pk, role)
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if user is None:
        user = User.objects.create_user(email=email, full_name=full_name[:150])
    elif Membership.objects.filter(user=user, org=org).exists():
        raise ApplicationError("This person is already a member.", field="email")
    membership = Membership.objects.create(user=user, org=org, role=role)
    activity_record(
        actor=actor,
        verb="member.invite",
        org=org,
        target=membership,
        target_label=email,
        details={"role": role.slug},
    )
    path = set_password_path(user) if created or not user.has_usable_password() else None
    return Invitation(membership, created, path)


@transaction.atomic
def membership_update(*, actor: Actor, membership: Membership, role: Role) -> Membership:

    membership = Membership.objects.select_for_update().select_related("role").get(pk=membership.pk)
    _check_role_in_org(role, membership.org_id)
    _check_can_grant(actor, membership.org_id, role)
    _check_can_grant(actor, membership.org_id, membership.role)
    if (
        membership.role.slug == "owner"
        and role.slug != "owner"
        and _owners_left(membership.org_id, membership) == 0
    ):
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


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:

    if (
        membership.role.slug == "owner"
        and membership.role.org_id is None
        and _owners_left(membership.org_id, membership) == 0
    ):
        raise ApplicationError("The last owner can't be removed.")
    _check_can_grant(actor, membership.org_id, membership.role)
    SiteRoleAssignment.objects.filter(
        user_id=membership.user_id, site__org_id=membership.org_id
    ).delete()
    activity_record(
        actor=actor,
        verb="member.remove",
        org=membership.org_id,
        target=membership,
        target_label=membership.user.email,
    )
    membership.delete()


@transaction.atomic
def site_role_assign(*, actor: Actor, site: Site, user: User, role: Role) -> SiteRoleAssignment:

    if not Membership.objects.filter(user=user, org_id=site.org_id).exists():
        raise ApplicationError(
            "Only members of the site's organization can get a site role.", field="user"
        )
    _check_role_in_org(role, site.org_id)
    _check_can_grant(actor, site.org_id, role)
    assignment, _ = SiteRoleAssignment.objects.update_or_create(
        user=user, site=site, defaults={"role": role}
    )
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


@transaction.atomic
def site_role_remove(*, actor: Actor, assignment: SiteRoleAssignment) -> None:

    _check_can_grant(actor, assignment.site.org_id, assignment.role)
    activity_record(
        actor=actor,
        verb="site_role.remove",
        org=assignment.site.org_id,
        site=assignment.site_id,
        target=assignment,
        target_label=f"{assignment.user.email} @ {assignment.site.name}",
    )
    assignment.delete()
