"""Helpers shared by more than one suite (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import struct
import time
from urllib.parse import quote

TOTP_PERIOD = 30


def totp(secret: str, at: float | None = None, step: int = TOTP_PERIOD, digits: int = 6) -> str:
    """RFC 6238 (HMAC-SHA1): the code an authenticator app shows for the secret it scanned."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shared_database_url() -> str:
    """The test database as a URL, for server processes the test starts (they share it)."""
    from django.db import connections

    db = connections["default"].settings_dict
    assert "postgresql" in db["ENGINE"], "a server process needs a database it can share"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
