"""Keys of the node protocol: the org's command-signing keys and each node's data key.

Private parts are envelope-encrypted with the org's data key (``fleet.crypto``), with the key's
own label as associated data. ``seq`` comes from ``CommandKey.next_seq``, taken under a row lock.
"""

from __future__ import annotations

import os
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from fleet import crypto
from fleet.models import CommandKey, FleetNode
from fleetnode import protocol


def _new_key(org_id: int) -> CommandKey:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key = CommandKey(
        org_id=org_id,
        kid=f"k{org_id}-{secrets.token_hex(6)}",
        public_key=protocol.public_bytes(private),
        active=True,
    )
    key.sealed_private = crypto.encrypt(
        protocol.b64encode(raw), org_id=org_id, label=key.private_label
    )
    key.save()
    return key


def command_key_active(org_id: int) -> CommandKey:
    """The org's active command key, made on first use (one creator at a time)."""
    key = CommandKey.unscoped.filter(org_id=org_id, active=True).first()
    if key is not None:
        return key
    with transaction.atomic():
        Organization.unscoped.select_for_update().filter(pk=org_id).first()
        key = CommandKey.unscoped.filter(org_id=org_id, active=True).first()
        return key or _new_key(org_id)


# Decrypted signing keys of this process, by (org, kid, data-key version of the envelope): a
# new kid (rotation) or a re-encryption under a newer data key misses and decrypts again.
_PRIVATE: dict[tuple[int, str, int], Ed25519PrivateKey] = {}
_PRIVATE_MAX = 256


def private_key(key: CommandKey) -> Ed25519PrivateKey:
    sealed = bytes(key.sealed_private)
    cache_key = (key.org_id, key.kid, crypto.blob_version(sealed))
    found = _PRIVATE.get(cache_key)
    if found is not None:
        return found
    text = crypto.decrypt(sealed, org_id=key.org_id, label=key.private_label)
    private = Ed25519PrivateKey.from_private_bytes(protocol.b64decode(text, length=32))
    if len(_PRIVATE) >= _PRIVATE_MAX:
        _PRIVATE.clear()
    _PRIVATE[cache_key] = private
    return private


def private_keys_forget() -> None:
    """Drop the decrypted signing keys cached in this process (tests)."""
    _PRIVATE.clear()


_TAKE_SEQ = (
    "UPDATE fleet_commandkey SET next_seq = next_seq + %s WHERE id = %s RETURNING next_seq - %s"
)


def take_seq(key: CommandKey, n: int = 1) -> int:
    """The next ``seq`` of this key (the first of a block of ``n``): the per-key sequence,
    atomic across processes.

    One ``UPDATE … RETURNING`` (PostgreSQL, SQLite ≥ 3.35): the row lock is held for that
    statement only, not across a separate SELECT FOR UPDATE and UPDATE.
    """
    if n < 1:
        raise ValueError("take_seq: n must be at least 1")
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SEQ, [n, key.pk, n])
        row = cursor.fetchone()
    if row is None:
        raise CommandKey.DoesNotExist(f"command key {key.pk}")
    return int(row[0])


def command_keys_public(
    org_id: int, chain: list[CommandKey] | None = None
) -> list[dict[str, object]]:
    """The org's key set for ``welcome``: every key not retired, newest first (from ``chain``,
    the org's keys as ``command_keys_all`` reads them, when the caller has it already)."""
    if chain is None:
        rows = list(CommandKey.unscoped.filter(org_id=org_id, retired_at__isnull=True))
    else:
        rows = [k for k in reversed(chain) if k.retired_at is None]
    return [
        {"kid": k.kid, "public_key": protocol.b64encode(bytes(k.public_key)), "active": k.active}
        for k in rows
    ]


def command_keys_all(org_id: int) -> list[CommandKey]:
    """Every command key of the org, oldest first (the rotation chain), in one query."""
    return list(CommandKey.unscoped.filter(org_id=org_id).order_by("created_at", "id"))


@transaction.atomic
def command_key_replace(org_id: int) -> tuple[CommandKey, CommandKey]:
    """(old, new): a new active key; the old one stays (inactive) to sign the rotation."""
    Organization.unscoped.select_for_update().filter(pk=org_id).first()
    old = command_key_active(org_id)
    CommandKey.unscoped.filter(pk=old.pk).update(active=False)
    new = _new_key(org_id)
    old.active = False
    return old, new


def command_key_retire(key: CommandKey) -> None:
    CommandKey.unscoped.filter(pk=key.pk).update(retired_at=timezone.now())


def node_data_key(node: FleetNode) -> bytes:
    """The node's data key (AES-256), made on first use and stored envelope-encrypted.

    A row that already carries the sealed key is decrypted without a query (the key never
    changes once made; ``node_secrets_reencrypt`` only re-wraps it)."""
    if node.sealed_data_key:
        text = crypto.decrypt(
            bytes(node.sealed_data_key), org_id=node.org_id, label=node.data_key_label
        )
        return protocol.b64decode(text, length=32)
    with transaction.atomic():
        row = FleetNode.unscoped.select_for_update().get(pk=node.pk)
        if row.sealed_data_key:
            node.sealed_data_key = row.sealed_data_key
            text = crypto.decrypt(
                bytes(row.sealed_data_key), org_id=row.org_id, label=row.data_key_label
            )
            return protocol.b64decode(text, length=32)
        raw = os.urandom(32)
        sealed = crypto.encrypt(
            protocol.b64encode(raw), org_id=row.org_id, label=row.data_key_label
        )
        FleetNode.unscoped.filter(pk=node.pk).update(sealed_data_key=sealed)
        node.sealed_data_key = sealed
        return raw


def node_secrets_reencrypt(org_id: int) -> int:
    """Re-encrypt the org's node secrets under its active data key (``data_keys_rotate``)."""
    count = 0
    for key in CommandKey.unscoped.select_for_update().filter(org_id=org_id):
        text = crypto.decrypt(bytes(key.sealed_private), org_id=org_id, label=key.private_label)
        key.sealed_private = crypto.encrypt(text, org_id=org_id, label=key.private_label)
        key.save(update_fields=["sealed_private"])
        count += 1
    nodes = FleetNode.unscoped.select_for_update().filter(
        org_id=org_id, sealed_data_key__isnull=False
    )
    for node in nodes:
        label = node.data_key_label
        text = crypto.decrypt(bytes(node.sealed_data_key or b""), org_id=org_id, label=label)
        node.sealed_data_key = crypto.encrypt(text, org_id=org_id, label=label)
        node.save(update_fields=["sealed_data_key"])
        count += 1
    return count
