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
from accounts.errors import ApplicationError
from accounts.models import ApiToken, User
from accounts.services.activity import activity_record_personal

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
    activity_record_personal(
        actor=actor,
        verb=verb,
        user=token.user,
        target=token,
        target_label=f"{token.user.email}: {token.name}",
    )


@transaction.atomic
def api_token_create(
    *, actor: Actor, user: User, name: str, expires_at: datetime | None = None
) -> IssuedToken:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the token a name so you can recognise it later.", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", field="expires_at")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=prefix, token_hash=_hash(secret), expires_at=expires_at
    )
    _record(actor=actor, verb="apikey.create", token=token)
    return IssuedToken(token, secret)


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
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
    token = ApiToken.objects.select_related("user").filter(prefix=match.group(1)).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    return token
