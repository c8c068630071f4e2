"""Helpers shared by more than one suite (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

TOTP_PERIOD = 30


def totp(secret: str, at: float | None = None, step: int = TOTP_PERIOD, digits: int = 6) -> str:
    """RFC 6238 (HMAC-SHA1): the code an authenticator app shows for the secret it scanned."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"
