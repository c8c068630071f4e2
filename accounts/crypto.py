"""Small authenticated-encryption helpers keyed from FLEET_MASTER_KEY.

Each purpose gets its own key (HKDF-SHA256 with the purpose as ``info``), so a value sealed for
one use can't be opened as another. Sealed text is ``v1:`` + base64(nonce ‖ AES-256-GCM output).
"""

from __future__ import annotations

import base64
import os
from functools import cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_PREFIX = "v1:"


class SealError(ValueError):
    """The sealed value is corrupt or was sealed with another key or purpose."""


@cache
def _key(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


def seal(plaintext: str, *, purpose: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(settings.FLEET_MASTER_KEY, purpose)).encrypt(
        nonce, plaintext.encode(), purpose.encode()
    )
    return _PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(text: str, *, purpose: str) -> str:
    """Opens values sealed with the master key or, during a rotation, a previous one."""
    if not text.startswith(_PREFIX):
        raise SealError("not a sealed value")
    try:
        raw = base64.b64decode(text[len(_PREFIX) :], validate=True)
    except ValueError as exc:
        raise SealError("sealed value is corrupt") from exc
    for master in (settings.FLEET_MASTER_KEY, *settings.FLEET_MASTER_KEYS_PREVIOUS):
        try:
            plain = AESGCM(_key(master, purpose)).decrypt(raw[:12], raw[12:], purpose.encode())
        except (InvalidTag, ValueError):
            continue
        return plain.decode()
    raise SealError("sealed value can't be opened with this key")


MFA_PURPOSE = "rigwarden:mfa"
