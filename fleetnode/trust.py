"""Which commands the node obeys: signed by a key it trusts, not expired, never replayed.

The node trusts command keys on first contact only (the ``welcome`` right after enrollment);
from then on a key is added only by a ``key_rotation`` command signed by a key it already
trusts, and a ``welcome`` can only retire keys (``active: false``), never add one. The seq
high-water mark of a key is written to disk *before* the command runs, so a replay after a
crash or restart is refused too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, TypeGuard

from fleetnode.protocol import COMMAND_KINDS, b64decode, verify_command
from fleetnode.state import State

log = logging.getLogger("fleetnode.trust")

MAX_ID_LENGTH = 64
MAX_KID_LENGTH = 32
CLOCK_SKEW_S = 300  # a command issued further in the future than this is refused


class Rejected(Exception):
    """A command the node refuses; ``reason`` goes into the ``rejected`` ack."""

    def __init__(
        self, reason: str, command_id: str | int | None = None, category: str = "malformed"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id
        self.category = category  # a bounded label for metrics


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str | int
    seq: int
    kind: str
    kid: str
    actor: Any
    issued_at: float
    expires_at: float
    payload: dict[str, Any]


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def command_id_of(frame: dict[str, Any]) -> str | int | None:
    value = frame.get("command_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH):
        return value
    return None


def parse_command(frame: dict[str, Any]) -> Command:
    """The command's fields, typed; a ``Rejected`` names the first wrong one."""
    command_id = command_id_of(frame)
    if command_id is None:
        raise Rejected("command_id missing or not a short string/integer")
    seq, kind, kid = frame.get("seq"), frame.get("kind"), frame.get("kid")
    issued, expires, payload = frame.get("issued_at"), frame.get("expires_at"), frame.get("payload")
    if "sig" not in frame:
        raise Rejected("unsigned command", command_id, "unsigned")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise Rejected("seq is not a positive integer", command_id)
    if not isinstance(kind, str) or kind not in COMMAND_KINDS:
        raise Rejected(f"unknown command kind {str(kind)[:40]!r}", command_id)
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise Rejected("kid missing or too long", command_id)
    if not _number(issued) or not _number(expires):
        raise Rejected("issued_at/expires_at are not Unix seconds", command_id)
    if not isinstance(payload, dict):
        raise Rejected("payload is not an object", command_id)
    return Command(
        command_id, seq, kind, kid, frame.get("actor"), float(issued), float(expires), payload
    )


class Trust:
    def __init__(self, state: State, *, clock: Any = time.time) -> None:
        self.state = state
        self.clock = clock
        self.keys = state.trusted_keys()
        self.hwm = state.seq_hwm()

    def welcome_keys(self, command_keys: Any) -> None:
        """TOFU on first contact; afterwards only retire trusted keys the server marks
        inactive (a welcome is not signed: it may take trust away, never add it)."""
        if not isinstance(command_keys, list):
            log.warning(
                "welcome without a command key list; keeping %d trusted keys", len(self.keys)
            )
            return
        offered: dict[str, tuple[bytes, bool]] = {}
        for entry in command_keys[:32]:
            try:
                kid, pub = str(entry["kid"])[:MAX_KID_LENGTH], entry["public_key"]
                offered[kid] = (
                    b64decode(pub, length=32, field="public_key"),
                    entry.get("active", True) is not False,
                )
            except (KeyError, TypeError, ValueError):
                log.warning("welcome: ignoring a malformed command key entry")
        if not self.keys:
            trusted = {kid: pub for kid, (pub, active) in offered.items() if active}
            if trusted:
                self.keys = trusted
                self.state.set_trusted_keys(self.keys)
                log.info("trusting command keys %s (first contact)", ", ".join(sorted(trusted)))
            return
        for kid, (pub, active) in offered.items():
            if kid not in self.keys:
                log.warning(
                    "welcome offers command key %s: not trusted (needs a signed key_rotation)", kid
                )
            elif self.keys[kid] != pub:
                log.error("welcome: key %s differs from the trusted one; ignoring it", kid)
            elif not active and len(self.keys) > 1:
                del self.keys[kid]
                self.state.set_trusted_keys(self.keys)
                log.info("command key %s retired by the server", kid)

    def accept(self, frame: dict[str, Any]) -> Command:
        """Verify ``frame`` and record its seq (on disk) before the caller acts on it."""
        command = parse_command(frame)
        public = self.keys.get(command.kid)
        if public is None:
            raise Rejected(
                f"unknown command key {command.kid!r}", command.command_id, "unknown_key"
            )
        if not verify_command(public, frame):
            raise Rejected("bad signature", command.command_id, "bad_signature")
        now = self.clock()
        if command.expires_at <= now:
            raise Rejected("expired", command.command_id, "expired")
        if command.issued_at > now + CLOCK_SKEW_S:
            raise Rejected(
                "issued in the future (check the node's clock)", command.command_id, "future"
            )
        if command.seq <= self.hwm.get(command.kid, 0):
            raise Rejected(
                f"replayed seq {command.seq} (highest accepted {self.hwm[command.kid]})",
                command.command_id,
                "replayed",
            )
        self.hwm[command.kid] = command.seq
        self.state.set_seq_hwm(self.hwm)
        return command

    def rotate(self, command: Command) -> str:
        """A verified ``key_rotation``: trust its new key (the signer stays trusted until the
        server retires it in a welcome)."""
        new_kid, new_pub = command.payload.get("new_kid"), command.payload.get("new_public_key")
        if not isinstance(new_kid, str) or not 0 < len(new_kid) <= MAX_KID_LENGTH:
            raise Rejected("new_kid missing or too long", command.command_id)
        try:
            raw = b64decode(str(new_pub), length=32, field="new_public_key")
        except ValueError as exc:
            raise Rejected(str(exc), command.command_id) from None
        if new_kid in self.keys and self.keys[new_kid] != raw:
            raise Rejected(
                f"key {new_kid} is already trusted with another value", command.command_id
            )
        self.keys[new_kid] = raw
        self.state.set_trusted_keys(self.keys)
        log.info("command key %s trusted (rotation signed by %s)", new_kid, command.kid)
        return new_kid
