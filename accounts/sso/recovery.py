"""Break-glass: the local owner account, which never depends on the identity provider."""

from __future__ import annotations

from django.db import transaction

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import LoginLockout, Membership, Organization, User, forget_grants
from accounts.services.activity import activity_record
from accounts.services.members import clean_email
from accounts.services.roles import role_for_org


@transaction.atomic
def owner_break_glass_reset(
    *, actor: Actor, org: Organization, email: str, password: str, remove_mfa: bool = False
) -> User:
    """Operators at the server's shell only (``manage.py reset_owner``): the account gets this
    password, is enabled and unlocked, and is an owner of ``org`` — created if missing."""
    if actor.user is not None:
        raise ApplicationError("Only the server's shell can reset the break-glass owner.")
    email = clean_email(email)
    if not password:
        raise ApplicationError("A password is required.", field="password")
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if user is None:
        user = User.objects.create_user(email=email, password=password)
    else:
        user.set_password(password)
        user.is_active = True
        user.save(update_fields=["password", "is_active"])
    LoginLockout.objects.filter(key=f"email:{email}").delete()
    if remove_mfa:
        from allauth.mfa.models import Authenticator

        Authenticator.objects.filter(user=user).delete()
    owner = role_for_org(org=org, slug="owner")
    membership, _ = Membership.unscoped.update_or_create(
        user=user, org=org, defaults={"role": owner}
    )
    forget_grants(user)
    activity_record(
        actor=actor,
        verb="owner.break_glass_reset",
        org=org,
        target=membership,
        target_label=user.email,
        details={"created": created, "mfa_removed": remove_mfa},
    )
    return user
