"""The fleet-node wire protocol, shared by the server (``fleet``) and the agent. No Django.

Everything both sides must agree on byte for byte lives here: canonical JSON, key
fingerprints, base64, command signing and verification, message types, close codes and
limits. ``docs/protocol.md`` is the prose version; keep the two in step.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# --- limits -------------------------------------------------------------------------------
MAX_FRAME_BYTES: Final = 1024 * 1024  # one text frame, one JSON object
HELLO_TIMEOUT_S: Final = 5.0
CHALLENGE_TTL_S: Final = 30
SESSION_TTL_S: Final = 15 * 60
CREDENTIALS_TS_SKEW_S: Final = 5 * 60
HEARTBEAT_INTERVAL_S: Final = 15

# --- close codes (WebSocket) --------------------------------------------------------------
CLOSE_MALFORMED: Final = 4400  # not JSON, not an object, no/unknown type, bad fields, too big
CLOSE_UNAUTHENTICATED: Final = 4401  # missing / invalid / expired session token
CLOSE_REVOKED: Final = 4403  # node revoked or not confirmed
CLOSE_HELLO_TIMEOUT: Final = 4408
CLOSE_REPLACED: Final = 4409  # a newer connection of the same node took over
CLOSE_RATE_LIMITED: Final = 4429
CLOSE_DRAINING: Final = 1012  # after goaway

# --- message types ------------------------------------------------------------------------
NODE_TO_SERVER: Final = frozenset(
    {"hello", "heartbeat", "ack", "discovery_batch", "telemetry_batch"}
)
SERVER_TO_NODE: Final = frozenset({"welcome", "command", "batch_ack", "goaway"})
TUNNEL_PREFIX: Final = "tunnel_"  # tunnel_* in both directions (proxy and terminals)

ACK_STATUSES: Final = frozenset({"accepted", "busy", "rejected", "ok", "partial", "failed"})
FINAL_ACK_STATUSES: Final = frozenset({"rejected", "ok", "partial", "failed"})

# Command kinds. Miner actions mirror fleet.actions; the rest manage the node itself.
MINER_ACTION_KINDS: Final = frozenset(
    {
        "reboot",
        "blink",
        "start_mining",
        "stop_mining",
        "set_power_target",
        "set_pools",
        "set_cooling",
        "download_logs",
    }
)
NODE_KINDS: Final = frozenset({"assign_miners", "node_key", "key_rotation", "discover", "ping"})
COMMAND_KINDS: Final = MINER_ACTION_KINDS | NODE_KINDS
# long jobs take the node's one exclusive slot; everything else a bounded pool
EXCLUSIVE_KINDS: Final = frozenset({"discover"})

COMMAND_FIELDS: Final = (
    "type",
    "command_id",
    "seq",
    "kind",
    "actor",
    "issued_at",
    "expires_at",
    "payload",
    "kid",
    "sig",
)


# --- tunnels (docs/protocol.md "Tunnels") ----------------------------------------------------
# server → node: tunnel_request (HTTP to an assigned miner), tunnel_open (a TCP stream);
# node → server: tunnel_response, tunnel_opened; both ways: tunnel_data, tunnel_window,
# tunnel_close. ``id`` is 32 lowercase hex characters, chosen by the server.
TUNNEL_TYPES: Final = frozenset(
    {
        "tunnel_request",
        "tunnel_response",
        "tunnel_open",
        "tunnel_opened",
        "tunnel_data",
        "tunnel_window",
        "tunnel_close",
    }
)
TUNNEL_CHUNK: Final = 256 * 1024  # raw bytes in one tunnel_data (base64 stays well under 1 MiB)
TUNNEL_WINDOW: Final = 1024 * 1024  # unacknowledged data bytes per tunnel and direction
TUNNEL_MAX_FRAMES: Final = 16  # unacknowledged data frames per tunnel and direction
TUNNEL_MAX_OPEN: Final = 32  # tunnels open at once on one node connection
TUNNEL_REQUEST_MAX: Final = 1024 * 1024  # an HTTP tunnel's request body
TUNNEL_RESPONSE_MAX: Final = 64 * 1024 * 1024  # an HTTP tunnel's response body
TUNNEL_HEADERS_MAX: Final = 64  # header pairs either way
# why a tunnel closed (tunnel_close.reason); anything else reads as "error"
TUNNEL_REASONS: Final = frozenset(
    {
        "done",
        "cancelled",
        "refused",
        "unreachable",
        "timeout",
        "auth_failed",
        "too_large",
        "busy",
        "node_offline",
        "error",
    }
)


def tunnel_id(frame: dict[str, Any]) -> str:
    value = frame.get("id")
    if (
        not isinstance(value, str)
        or len(value) != 32
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise ProtocolError(f"{frame.get('type')}.id: expected 32 lowercase hex characters")
    return value


def tunnel_data(tid: str, data: bytes, *, eof: bool = False) -> dict[str, Any]:
    return {"type": "tunnel_data", "id": tid, "data": b64encode(data), "eof": eof}


def tunnel_data_bytes(frame: dict[str, Any]) -> bytes:
    raw = b64decode(frame.get("data", ""), field="tunnel_data.data")
    if len(raw) > TUNNEL_CHUNK:
        raise ProtocolError(f"tunnel_data over {TUNNEL_CHUNK} bytes")
    return raw


def tunnel_window_bytes(frame: dict[str, Any]) -> int:
    value = frame.get("bytes")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= TUNNEL_WINDOW:
        raise ProtocolError(f"tunnel_window.bytes: an integer 1-{TUNNEL_WINDOW}")
    return value


def tunnel_close(tid: str, reason: str, error: str = "") -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "tunnel_close", "id": tid, "reason": reason}
    if error:
        frame["error"] = error[:500]
    return frame


class ProtocolError(ValueError):
    """Bad input on the wire; ``code`` is the close code it deserves."""

    def __init__(self, message: str, code: int = CLOSE_MALFORMED) -> None:
        super().__init__(message)
        self.code = code


# --- encodings ------------------------------------------------------------------------------
def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped): what signatures cover."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str, *, length: int | None = None, field: str = "value") -> bytes:
    """Strict standard base64 (padding required, no whitespace or URL-safe characters)."""
    if not isinstance(text, str):
        raise ProtocolError(f"{field}: expected a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProtocolError(f"{field}: not standard base64") from None
    if length is not None and len(raw) != length:
        raise ProtocolError(f"{field}: expected {length} bytes, got {len(raw)}")
    return raw


def fingerprint(public_key: bytes) -> str:
    """Lowercase hex of the first 8 bytes of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(public_key).digest()[:8].hex()


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise ProtocolError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        load_public(public_key).verify(signature, message)
    except (InvalidSignature, ProtocolError, ValueError):
        return False
    return True


# --- commands ---------------------------------------------------------------------------------
def command_signing_bytes(command: dict[str, Any]) -> bytes:
    """The canonical JSON of the command without ``sig``."""
    return canonical_json({k: v for k, v in command.items() if k != "sig"})


def sign_command(key: Ed25519PrivateKey, command: dict[str, Any]) -> dict[str, Any]:
    """Return ``command`` with ``sig`` set (base64 Ed25519 over the canonical JSON)."""
    body = {k: v for k, v in command.items() if k != "sig"}
    return {**body, "sig": b64encode(key.sign(canonical_json(body)))}


def verify_command(public_key: bytes, command: dict[str, Any]) -> bool:
    sig = command.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        raw = b64decode(sig, length=64, field="sig")
    except ProtocolError:
        return False
    return verify(public_key, raw, command_signing_bytes(command))


# --- frames -----------------------------------------------------------------------------------
def parse_frame(text: str | bytes, *, allowed: frozenset[str]) -> dict[str, Any]:
    """One frame → one JSON object with a known ``type``; anything else is a ProtocolError."""
    if isinstance(text, bytes):
        raise ProtocolError("binary frames are not part of the protocol")
    if len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise ProtocolError("frame over 1 MiB")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("frame is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("frame has no string type")
    if kind not in allowed and not kind.startswith(TUNNEL_PREFIX):
        raise ProtocolError(f"unknown message type {kind[:40]!r}")
    return obj


def dump_frame(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- sealing secrets to one node ------------------------------------------------------------
# A node holds an X25519 key pair next to its Ed25519 identity and sends the public half in
# ``hello``. The server seals a random per-node data key to it (ephemeral X25519 + HKDF-SHA256
# + AES-256-GCM) in a signed ``node_key`` command; miner credentials in ``assign_miners`` are
# AES-256-GCM under that node key with associated data naming node, miner and version, so a
# node can read its own miners' credentials and nobody else's.
NODE_KEY_INFO: Final = b"rigwarden node key v1"


def _hkdf(shared: bytes, node_id: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=str(node_id).encode(), info=NODE_KEY_INFO
    ).derive(shared)


def seal_to_node(node_public: bytes, node_id: int, secret: bytes) -> dict[str, str]:
    import os

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    eph = X25519PrivateKey.generate()
    key = _hkdf(eph.exchange(X25519PublicKey.from_public_bytes(node_public)), node_id)
    nonce = os.urandom(12)
    epk = eph.public_key().public_bytes_raw()
    ct = AESGCM(key).encrypt(nonce, secret, epk)
    return {"epk": b64encode(epk), "nonce": b64encode(nonce), "ct": b64encode(ct)}


def open_sealed(node_private: Any, node_id: int, sealed: dict[str, Any]) -> bytes:
    """``node_private``: the node's X25519PrivateKey. Raises ProtocolError if it doesn't open."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    epk = b64decode(sealed.get("epk", ""), length=32, field="epk")
    nonce = b64decode(sealed.get("nonce", ""), length=12, field="nonce")
    ct = b64decode(sealed.get("ct", ""), field="ct")
    key = _hkdf(node_private.exchange(X25519PublicKey.from_public_bytes(epk)), node_id)
    try:
        return AESGCM(key).decrypt(nonce, ct, epk)
    except InvalidTag:
        raise ProtocolError("sealed secret does not open with this node's key") from None


def credential_aad(node_id: int, miner_id: int, version: int) -> bytes:
    return f"rigwarden:node:{node_id}:miner:{miner_id}:v{version}".encode()


def encrypt_credential(
    node_key: bytes, node_id: int, miner_id: int, version: int, plaintext: bytes
) -> dict[str, str]:
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    ct = AESGCM(node_key).encrypt(nonce, plaintext, credential_aad(node_id, miner_id, version))
    return {"nonce": b64encode(nonce), "ct": b64encode(ct), "v": str(version)}


def decrypt_credential(node_key: bytes, node_id: int, miner_id: int, blob: dict[str, Any]) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b64decode(blob.get("nonce", ""), length=12, field="nonce")
    ct = b64decode(blob.get("ct", ""), field="ct")
    try:
        version = int(str(blob.get("v", "")))
        return AESGCM(node_key).decrypt(nonce, ct, credential_aad(node_id, miner_id, version))
    except (InvalidTag, ValueError):
        raise ProtocolError("credential does not open with this node's key") from None
