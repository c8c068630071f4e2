"""Node sessions: api key + a fresh signed challenge → a short-lived control-stream token."""

from __future__ import annotations

import datetime as dt
import hmac
import os

from django.utils import timezone

from accounts.errors import ApplicationError
from fleet.models import FleetNode, NodeChallenge, NodeSession, NodeStatus
from fleet.nodes.errors import NodeRefused
from fleet.nodes.metrics import HANDSHAKES
from fleet.nodes.secrets import new_token, secret_hash
from fleetnode import protocol

SESSION_PREFIX = "rws_"


def node_for_api_key(api_key: str) -> FleetNode:
    """The node of this api key (401 if none; 403 if revoked or not confirmed)."""
    digest = secret_hash(api_key)
    node = FleetNode.unscoped.filter(api_key_hash=digest).first()
    if node is None or not hmac.compare_digest(node.api_key_hash or "", digest):
        HANDSHAKES.labels("session", "bad_api_key").inc()
        raise NodeRefused(401, "Invalid api key.")
    if node.status != NodeStatus.CONFIRMED:
        HANDSHAKES.labels("session", "revoked").inc()
        raise NodeRefused(403, "This node is revoked.")
    return node


def session_begin(*, api_key: str) -> str:
    """A challenge (base64 of 32 random bytes) the node must sign within 30 s, once."""
    node = node_for_api_key(api_key)
    raw = os.urandom(32)
    NodeChallenge.unscoped.create(
        node=node,
        challenge_hash=secret_hash(raw),
        expires_at=timezone.now() + dt.timedelta(seconds=protocol.CHALLENGE_TTL_S),
    )
    NodeChallenge.unscoped.filter(node=node, expires_at__lt=timezone.now()).delete()
    return protocol.b64encode(raw)


def session_complete(*, api_key: str, challenge: str, sig: bytes) -> tuple[str, dt.datetime]:
    """(session token, expiry) for a signature of a live challenge of this node."""
    node = node_for_api_key(api_key)
    try:
        raw = protocol.b64decode(challenge, length=32, field="challenge")
    except protocol.ProtocolError as exc:
        raise ApplicationError(str(exc), field="challenge") from exc
    now = timezone.now()
    # spent whether or not the signature verifies (an update, committed on its own): one use
    spent = NodeChallenge.unscoped.filter(
        node=node, challenge_hash=secret_hash(raw), used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not spent:
        HANDSHAKES.labels("session", "bad_challenge").inc()
        raise NodeRefused(401, "Unknown, used or expired challenge: begin a new session.")
    if not protocol.verify(bytes(node.identity_key), sig, raw):
        HANDSHAKES.labels("session", "bad_signature").inc()
        raise NodeRefused(401, "The signature of the challenge doesn't verify.")
    token, digest = new_token(SESSION_PREFIX, 32)
    expires = now + dt.timedelta(seconds=protocol.SESSION_TTL_S)
    NodeSession.unscoped.create(node=node, token_hash=digest, expires_at=expires)
    NodeSession.unscoped.filter(node=node, expires_at__lt=now).delete()
    HANDSHAKES.labels("session", "ok").inc()
    return token, expires


def session_authenticate(token: str) -> tuple[FleetNode, NodeSession] | None:
    """The node and session of a token, or None (unknown or expired). A killed session is
    returned (``revoked_at`` set) so the caller can tell a revoked node (4403) from a bad
    session (4401)."""
    row = NodeSession.unscoped.select_related("node").filter(token_hash=secret_hash(token)).first()
    if row is None or row.expires_at <= timezone.now():
        return None
    return row.node, row


def session_alive(session_id: int) -> bool:
    return NodeSession.unscoped.filter(
        pk=session_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).exists()
