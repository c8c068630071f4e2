"""Invitations: an org offers a role to an e-mail address; only its owner can take it up.

Nothing is granted, and no account is created or changed, until the person accepts: an
existing account accepts while signed in as itself; a new address chooses its password on the
invitation page and is signed in. The inviter gets the same answer whether or not the address
already has an account, and never a link that could set someone's password.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import (
    INVITATION_LIFETIME,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    Role,
    User,
)
from accounts.services.activity import activity_record, records_refusals
from accounts.services.members import (
    check_role_grantable,
    clean_email,
    membership_add,
    user_create,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    accept_url: str  # carries the secret: shown to the inviter once per (re)send, e-mailed
    email_sent: bool


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def accept_path(secret: str) -> str:
    return reverse("invitation-accept", kwargs={"secret": secret})


def invitation_for_secret(secret: str) -> Invitation | None:
    if not secret or len(secret) > 100:
        return None
    return (
        Invitation.unscoped.select_related("org", "role").filter(token_hash=_hash(secret)).first()
    )


def _issue(invitation: Invitation, base_url: str) -> IssuedInvitation:
    """A fresh secret (the old link dies), a fresh expiry, and the e-mail."""
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    invitation.token_hash = _hash(secret)
    invitation.sent_at = now
    invitation.expires_at = now + INVITATION_LIFETIME
    invitation.save(update_fields=["token_hash", "sent_at", "expires_at"])
    url = base_url.rstrip("/") + accept_path(secret)
    return IssuedInvitation(invitation, url, _send(invitation, url))


def _send(invitation: Invitation, url: str) -> bool:
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    context = {"invitation": invitation, "url": url, "has_account": has_account}
    try:
        send_mail(
            subject=f"You're invited to {invitation.org.name} on Rigwarden",
            message=render_to_string("accounts/invitations/email.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[invitation.email],
        )
    except (OSError, ConnectionError) as exc:  # SMTP errors are OSErrors
        log.warning("invitation e-mail to %s failed: %s", invitation.email, exc)
        return False
    return True


@records_refusals("member.invite")
@transaction.atomic
def member_invite(
    *,
    actor: Actor,
    org: Organization,
    email: str,
    role: Role,
    base_url: str,
    full_name: str = "",
) -> IssuedInvitation:
    authorize(actor, "user:manage", org.pk)
    email = clean_email(email)
    check_role_grantable(actor, role, org.pk)
    if Membership.unscoped.filter(org=org, user__email__iexact=email).exists():
        raise ApplicationError("This person is already a member.", field="email")
    Invitation.unscoped.filter(
        org=org, email=email, status=InvitationStatus.PENDING, expires_at__lte=timezone.now()
    ).update(status=InvitationStatus.REVOKED, responded_at=timezone.now())
    if Invitation.unscoped.filter(org=org, email=email, status=InvitationStatus.PENDING).exists():
        raise ApplicationError(
            "This address already has a pending invitation: re-send that one.", field="email"
        )
    invitation = Invitation.unscoped.create(
        org=org,
        email=email,
        role=role,
        full_name=full_name.strip()[:150],
        invited_by=actor.user,
        token_hash=_hash(secrets.token_urlsafe(32)),
    )
    activity_record(
        actor=actor,
        verb="member.invite",
        org=org,
        target=invitation,
        target_label=email,
        details={"role": role.slug},
    )
    return _issue(invitation, base_url)


def _check_pending(invitation: Invitation) -> None:
    if invitation.status != InvitationStatus.PENDING:
        raise ApplicationError(f"This invitation was {invitation.status}.")
    if invitation.is_expired:
        raise ApplicationError("This invitation has expired; ask for a new one.")


@records_refusals("invitation.resend")
@transaction.atomic
def invitation_resend(*, actor: Actor, invitation: Invitation, base_url: str) -> IssuedInvitation:
    authorize_on(actor, "user:manage", invitation)
    invitation = Invitation.unscoped.select_for_update().select_related("org").get(pk=invitation.pk)
    if invitation.status != InvitationStatus.PENDING:
        raise ApplicationError(f"This invitation was {invitation.status}.")
    activity_record(
        actor=actor,
        verb="invitation.resend",
        org=invitation.org_id,
        target=invitation,
        target_label=invitation.email,
    )
    return _issue(invitation, base_url)


@records_refusals("invitation.revoke")
@transaction.atomic
def invitation_revoke(*, actor: Actor, invitation: Invitation) -> Invitation:
    authorize_on(actor, "user:manage", invitation)
    _respond(invitation, InvitationStatus.REVOKED)
    activity_record(
        actor=actor,
        verb="invitation.revoke",
        org=invitation.org_id,
        target=invitation,
        target_label=invitation.email,
    )
    return invitation


def _respond(invitation: Invitation, status: InvitationStatus) -> None:
    locked = Invitation.unscoped.select_for_update().get(pk=invitation.pk)
    _check_pending(locked)
    invitation.status = status
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])


def _check_addressee(actor: Actor, invitation: Invitation) -> User:
    user = actor.user
    if user is None or user.email.lower() != invitation.email.lower():
        raise ApplicationError("This invitation is for another e-mail address.")
    return user


@records_refusals("invitation.accept")
@transaction.atomic
def invitation_accept(*, actor: Actor, invitation: Invitation) -> Membership:
    """The signed-in addressee joins the org with the offered role."""
    user = _check_addressee(actor, invitation)
    _respond(invitation, InvitationStatus.ACCEPTED)
    activity_record(
        actor=actor,
        verb="invitation.accept",
        org=invitation.org_id,
        target=invitation,
        target_label=invitation.email,
    )
    return membership_add(actor=actor, org=invitation.org, user=user, role=invitation.role)


@records_refusals("invitation.decline")
@transaction.atomic
def invitation_decline(*, actor: Actor, invitation: Invitation) -> Invitation:
    _check_addressee(actor, invitation)
    _respond(invitation, InvitationStatus.DECLINED)
    activity_record(
        actor=actor,
        verb="invitation.decline",
        org=invitation.org_id,
        target=invitation,
        target_label=invitation.email,
    )
    return invitation


@transaction.atomic
def invitation_accept_new_account(
    *, invitation: Invitation, password: str, full_name: str = "", ip: str | None = None
) -> User:
    """The link's holder creates the account for the invited address (only while no account
    has that address: an existing one must sign in and accept)."""
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ApplicationError("This address has an account: sign in to accept.")
    _check_pending(invitation)
    user = user_create(
        actor=Actor.system("invitation"),
        email=invitation.email,
        password=password,
        full_name=full_name or invitation.full_name,
    )
    invitation_accept(actor=Actor.for_user(user, ip), invitation=invitation)
    return user
