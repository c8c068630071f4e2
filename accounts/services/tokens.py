from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import ApiToken, Membership, Organization, User
from accounts.services.activity import activity_record, records_refusals

TOKEN_PREFIX = "rw_"
# rw_<12 hex prefix>_<token_urlsafe(32)>; anything else is refused before touching the database.
_TOKEN_RE = re.compile(r"rw_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}")
_LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(*, actor: Actor, verb: str, token: ApiToken) -> None:
    activity_record(
        actor=actor,
        verb=verb,
        org=token.org_id,
        target=token,
        target_type="apikey",
        target_label=f"{token.user.email}: {token.name}",
    )


def token_org_for(user: User, org: Organization | None) -> Organization:
    """The org a new token is bound to: the one asked for, or the user's only org."""
    orgs = Organization.unscoped.filter(memberships__user=user)
    if org is not None:
        if not orgs.filter(pk=org.pk).exists():
            raise ApplicationError("You aren't a member of that organization.", field="org")
        return org
    found = list(orgs[:2])
    if not found:
        raise ApplicationError(
            "You aren't a member of any organization, so a token would grant nothing.",
            field="org",
        )
    if len(found) > 1:
        raise ApplicationError(
            "You belong to several organizations: choose the one this token is for.", field="org"
        )
    return found[0]


@records_refusals("apikey.create")
@transaction.atomic
def api_token_create(
    *,
    actor: Actor,
    user: User,
    name: str,
    org: Organization | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A token for ``user`` in one org (``org``, or their only one). People issue their own;
    the system may issue for anyone (``create_api_token``)."""
    if actor.user is not None and actor.user.pk != user.pk:
        raise ApplicationError("API tokens are issued by their owner.")
    org = token_org_for(user, org)
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the token a name so you can recognise it later.", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", field="expires_at")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.unscoped.create(
        user=user,
        org=org,
        name=name[:100],
        prefix=prefix,
        token_hash=_hash(secret),
        expires_at=expires_at,
    )
    _record(actor=actor, verb="apikey.create", token=token)
    return IssuedToken(token, secret)


@records_refusals("apikey.revoke")
@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    """Your own token, or any token of an org where you hold ``apikey:manage``."""
    if actor.user is None or actor.user.pk != token.user_id:
        authorize(actor, "apikey:manage", token.org_id)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _record(actor=actor, verb="apikey.revoke", token=token)
    return token


def api_token_authenticate(secret: str, *, ip: str | None = None) -> ApiToken | None:
    """The active token for ``secret`` (owner active), or None. Compares hashes in constant time."""
    match = _TOKEN_RE.fullmatch(secret)
    if match is None:
        return None
    token = ApiToken.unscoped.select_related("user", "org").filter(prefix=match.group(1)).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    if not Membership.unscoped.filter(user_id=token.user_id, org_id=token.org_id).exists():
        return None  # left the org: the token grants nothing anywhere
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.unscoped.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    return token
