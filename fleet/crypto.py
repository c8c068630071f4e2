"""Envelope encryption of miner (and later SSH and node) secrets.

Each organization has data keys (``DataKey``): random 256-bit keys stored wrapped — AES-256-GCM
under a key derived from the master key (``FLEET_MASTER_KEY``), with the org and version as
associated data. A secret is AES-256-GCM under the org's active data key, with the org, the
object and the field as associated data, so a ciphertext copied to another row, field or org
fails to open.

Blob layout: ``b"e1" + version (4 bytes, big-endian) + nonce (12) + ciphertext``.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction

from fleet.models import DataKey

_MAGIC = b"e1"
_HEADER = struct.Struct(">2sI")
_WRAP_PURPOSE = b"rigwarden:fleet-datakey"
_unwrapped: dict[tuple[int, int], bytes] = {}


class SecretError(ValueError):
    """A secret that can't be opened: tampered, moved to another row, or its key is gone."""


def master_kid(master: bytes) -> str:
    return hashlib.sha256(master).hexdigest()[:16]


def _wrapping_key(master: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAP_PURPOSE)
    return hkdf.derive(master)


def _known_masters() -> dict[str, bytes]:
    keys = [settings.FLEET_MASTER_KEY, *settings.FLEET_MASTER_KEYS_PREVIOUS]
    return {master_kid(key): key for key in keys}


def _wrap_aad(org_id: int, version: int) -> bytes:
    return f"datakey|org={org_id}|v={version}".encode()


def wrap(raw: bytes, *, org_id: int, version: int, master: bytes | None = None) -> bytes:
    master = master or settings.FLEET_MASTER_KEY
    nonce = os.urandom(12)
    return nonce + AESGCM(_wrapping_key(master)).encrypt(nonce, raw, _wrap_aad(org_id, version))


def unwrap(key: DataKey) -> bytes:
    master = _known_masters().get(key.master_kid)
    if master is None:
        raise SecretError(
            f"data key v{key.version} of org {key.org_id} is wrapped by master key "
            f"{key.master_kid}, which this process doesn't have (FLEET_MASTER_KEY_PREVIOUS?)"
        )
    blob = bytes(key.wrapped)
    try:
        return AESGCM(_wrapping_key(master)).decrypt(
            blob[:12], blob[12:], _wrap_aad(key.org_id, key.version)
        )
    except InvalidTag as exc:
        raise SecretError(f"data key v{key.version} of org {key.org_id} is corrupt") from exc


def _raw_key(org_id: int, version: int) -> bytes:
    cached = _unwrapped.get((org_id, version))
    if cached is None:
        key = DataKey.objects.filter(org_id=org_id, version=version).first()
        if key is None:
            raise SecretError(f"org {org_id} has no data key v{version}")
        cached = _unwrapped[(org_id, version)] = unwrap(key)
    return cached


def active_key(org_id: int) -> tuple[int, bytes]:
    """(version, raw key) of the org's active data key, made on first use."""
    key = DataKey.objects.filter(org_id=org_id, active=True).first()
    if key is None:
        key = _create_first_key(org_id)
    return key.version, _raw_key(org_id, key.version)


@transaction.atomic
def _create_first_key(org_id: int) -> DataKey:
    from accounts.models import Organization

    Organization.unscoped.select_for_update().filter(pk=org_id).first()  # one creator at a time
    existing = DataKey.objects.filter(org_id=org_id, active=True).first()
    return existing or new_data_key(org_id)


def new_data_key(org_id: int) -> DataKey:
    """A fresh active data key (the previous one stays readable, inactive)."""
    last = DataKey.objects.filter(org_id=org_id).order_by("-version").first()
    version = (last.version + 1) if last else 1
    DataKey.objects.filter(org_id=org_id, active=True).update(active=False)
    raw = AESGCM.generate_key(bit_length=256)
    return DataKey.objects.create(
        org_id=org_id,
        version=version,
        wrapped=wrap(raw, org_id=org_id, version=version),
        master_kid=master_kid(settings.FLEET_MASTER_KEY),
        active=True,
    )


def _aad(org_id: int, label: str) -> bytes:
    return f"org={org_id}|{label}".encode()


def encrypt(plaintext: str, *, org_id: int, label: str) -> bytes:
    version, raw = active_key(org_id)
    nonce = os.urandom(12)
    sealed = AESGCM(raw).encrypt(nonce, plaintext.encode(), _aad(org_id, label))
    return _HEADER.pack(_MAGIC, version) + nonce + sealed


def blob_version(blob: bytes) -> int:
    magic, version = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise SecretError("not an encrypted secret")
    return int(version)


def decrypt(blob: bytes | memoryview, *, org_id: int, label: str) -> str:
    data = bytes(blob)
    if len(data) < _HEADER.size + 12 + 16:
        raise SecretError("encrypted secret is truncated")
    version = blob_version(data)
    start = _HEADER.size
    try:
        plain = AESGCM(_raw_key(org_id, version)).decrypt(
            data[start : start + 12], data[start + 12 :], _aad(org_id, label)
        )
    except InvalidTag as exc:
        raise SecretError("secret was tampered with or belongs to another object") from exc
    return plain.decode()


def forget_keys() -> None:
    """Drop unwrapped keys cached in this process (tests, after a rotation)."""
    _unwrapped.clear()
