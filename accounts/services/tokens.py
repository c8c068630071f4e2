from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import ApiToken, User
from accounts.services.activity import activity_record

TOKEN_PREFIX = "rw_"
_LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
    activity_record(
        actor=actor, verb="apikey.create", target=token, target_label=f"{user.email}: {token.name}"
    )
    return IssuedToken(token, secret)


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        activity_record(
            actor=actor,
            verb="apikey.revoke",
            target=token,
            target_label=f"{token.user.email}: {token.name}",
        )
    return token


def api_token_authenticate(secret: str, *, ip: str | None = None) -> ApiToken | None:
    """The active token for ``secret`` (owner active), or None. Compares hashes in constant time."""
    parts = secret.split("_")
    if len(parts) < 3 or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    return token
