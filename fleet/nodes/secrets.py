"""Random secrets the server hands out once and keeps only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets


def secret_hash(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()


def new_token(prefix: str, nbytes: int = 32) -> tuple[str, str]:
    """(the secret, its hash): ``prefix`` + URL-safe base64 of ``nbytes`` random bytes."""
    value = prefix + secrets.token_urlsafe(nbytes)
    return value, secret_hash(value)
