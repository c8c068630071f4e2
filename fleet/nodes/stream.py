"""What the control-stream consumer does with each node frame (sync, database side).

Every frame is untrusted: fields are type-checked here (a malformed one is a ProtocolError →
close 4400), acks must name an in-flight command of this node, telemetry must be about this
node's miners (others are dropped and counted), strings are length-capped.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.actor import Actor
from fleet.models import CommandKey, CommandStatus, FleetNode, Miner, NodeCommand
from fleet.nodes import ownership
from fleet.nodes.commands import command_finish
from fleet.nodes.keys import command_key_active, command_keys_all, command_keys_public
from fleet.nodes.metrics import DROPPED
from fleet.nodes.reports import ReportError, outcome_from_report
from fleet.services.telemetry import telemetry_ingest
from fleetnode import protocol
from fleetnode.protocol import ProtocolError

MAX_OUTCOMES = 5000
HEALTH_FIELDS = ("cpu_percent", "memory_percent", "disk_percent", "load1", "uptime_s")


def _str(msg: dict[str, Any], name: str, limit: int = 120, required: bool = True) -> str:
    value = msg.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"{name}: expected a string of at most {limit} characters")
    return value


def _int(msg: dict[str, Any], name: str) -> int:
    value = msg.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ProtocolError(f"{name}: expected a non-negative integer")
    return value


def stream_detach(node_id: int, channel: str) -> bool:
    """Clear the connection, unless a newer connection already took it over (False then)."""
    updated = FleetNode.unscoped.filter(pk=node_id, channel_name=channel).update(
        channel_name="", connected_at=None
    )
    return bool(updated)


def hello_handle(
    node: FleetNode,
    session_expires_at: dt.datetime,
    msg: dict[str, Any],
    *,
    channel: str,
    replica: str,
) -> tuple[dict[str, Any], FleetNode, list[CommandKey]]:
    """Validate ``hello`` and attach the connection; (the ``welcome`` frame, the node as stored
    now, the org's command keys for ``ownership.commands_on_hello``).

    ``node``: the row the session was authenticated with (moments ago, same socket). Two
    queries: one UPDATE (attach + hello), the org's keys."""
    if msg.get("node_id") != node.pk:
        raise ProtocolError("hello.node_id is not the node of this session")
    version = _str(msg, "agent_version", 40)
    enc = msg.get("encryption_key")
    encryption_key = protocol.b64decode(enc, length=32, field="encryption_key") if enc else None
    hwm = msg.get("seq_hwm", {})
    if not isinstance(hwm, dict) or len(hwm) > 64:
        raise ProtocolError("seq_hwm: expected an object {kid: seq}")
    for kid, seq in hwm.items():
        if len(kid) > 32 or isinstance(seq, bool) or not isinstance(seq, int):
            raise ProtocolError("seq_hwm: expected {kid: integer}")
    assignment = msg.get("assignment_version")
    if assignment is not None and (not isinstance(assignment, str) or len(assignment) > 64):
        raise ProtocolError("hello.assignment_version: a string of at most 64 characters")
    now = timezone.now()
    fields: dict[str, Any] = {
        "agent_version": version,
        "seq_hwm": hwm,
        "last_seen_at": now,
        "channel_name": channel,
        "connected_at": now,
        "replica": replica[:120],
    }
    if encryption_key is not None and encryption_key != bytes(node.encryption_key or b""):
        fields["encryption_key"] = encryption_key
        fields["data_key_delivered_at"] = None
    FleetNode.unscoped.filter(pk=node.pk).update(**fields)
    for name, value in fields.items():
        setattr(node, name, value)
    node.rw_assignment_version = assignment  # the set it polls: commands_on_hello skips a resend
    chain = command_keys_all(node.org_id)
    if not any(k.active for k in chain):  # the org's key set is never empty in a welcome
        command_key_active(node.org_id)
        chain = command_keys_all(node.org_id)
    welcome = {
        "type": "welcome",
        "node_id": node.pk,
        "server_time": time.time(),
        "heartbeat_interval_s": protocol.HEARTBEAT_INTERVAL_S,
        "session_expires_at": int(session_expires_at.timestamp()),
        "command_keys": command_keys_public(node.org_id, chain),
        "telemetry_seq": node.telemetry_seq,
    }
    return welcome, node, chain


def heartbeat_fields(msg: dict[str, Any]) -> dict[str, Any]:
    """A checked heartbeat → the node row's fields (no database: the consumer validates every
    heartbeat at once and writes them coalesced, see ``heartbeat_store``)."""
    misplaced = [name for name in HEALTH_FIELDS if name in msg]
    if misplaced:  # {"cpu_percent": …} beside "health" is a malformed heartbeat, not no health
        raise ProtocolError(f"heartbeat.{misplaced[0]}: belongs in heartbeat.health")
    raw = msg.get("health", {})
    if not isinstance(raw, dict):
        raise ProtocolError("heartbeat.health: expected an object")
    health: dict[str, float] = {}
    for name in HEALTH_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ProtocolError(f"heartbeat.health.{name}: expected a number")
        health[name] = float(value)
    fields: dict[str, Any] = {"health": health, "last_seen_at": timezone.now()}
    if msg.get("agent_version") is not None:
        fields["agent_version"] = _str(msg, "agent_version", 40)
    return fields


def heartbeat_store(node_id: int, fields: dict[str, Any]) -> None:
    FleetNode.unscoped.filter(pk=node_id).update(**fields)


def ack_handle(node_id: int, msg: dict[str, Any]) -> tuple[str, str, Any, str] | None:
    """Record an ack; (command_id, status, result, error) to relay, or None if dropped."""
    command_id = _str(msg, "command_id", 64)
    status = _str(msg, "status", 16)
    if status not in protocol.ACK_STATUSES:
        raise ProtocolError(f"ack.status must be one of {sorted(protocol.ACK_STATUSES)}")
    error = _str(msg, "error", 500, required=False)
    result = msg.get("result")
    if result is not None and len(protocol.canonical_json(result)) > 64 * 1024:
        result = {"truncated": True}
    try:
        uuid.UUID(command_id)
    except ValueError:
        row = None
    else:
        row = NodeCommand.unscoped.filter(command_id=command_id, node_id=node_id).first()
    if row is None or row.status not in (CommandStatus.SENT, CommandStatus.ACCEPTED):
        report_dropped(node_id, "ack_unknown_command")
        return None
    if status == "accepted":
        NodeCommand.unscoped.filter(pk=row.pk, status=CommandStatus.SENT).update(
            status=CommandStatus.ACCEPTED, accepted_at=timezone.now()
        )
    else:
        command_finish(command_id, status, result=result, error=error, row=row)
        ownership.command_done(row, status, result)
    return command_id, status, result, error


def report_dropped(node_id: int, reason: str, n: int = 1) -> None:
    DROPPED.labels(reason).inc(n)
    FleetNode.unscoped.filter(pk=node_id).update(rejected_reports=F("rejected_reports") + n)


def events_dropped(node_id: int, n: int) -> None:
    """Outgoing frames dropped because the connection's queue was full."""
    DROPPED.labels("queue_full").inc(n)
    FleetNode.unscoped.filter(pk=node_id).update(dropped_events=F("dropped_events") + n)


def telemetry_handle(node_id: int, msg: dict[str, Any]) -> dict[str, Any]:
    """Ingest a batch once (``batch_seq`` above the stored high-water), acked either way."""
    batch_seq = _int(msg, "batch_seq")
    raw = msg.get("outcomes")
    if not isinstance(raw, list) or len(raw) > MAX_OUTCOMES:
        raise ProtocolError(f"telemetry_batch.outcomes: a list of at most {MAX_OUTCOMES}")
    with transaction.atomic():
        node = FleetNode.unscoped.select_for_update().get(pk=node_id)
        if batch_seq <= node.telemetry_seq:
            return {"type": "batch_ack", "batch_seq": batch_seq, "accepted": 0, "duplicate": True}
        owned = set(Miner.unscoped.filter(node_id=node_id).values_list("id", flat=True))
        outcomes, dropped = [], 0
        for item in raw:
            try:
                outcomes.append(outcome_from_report(item, owned))
            except ReportError:
                dropped += 1
        if outcomes:
            telemetry_ingest(
                outcomes, actor=Actor.node(f"node:{node.pk} {node.name}"), schedule=False
            )
            ownership.identities_store(node_id, raw, owned)  # first polls carry identity
        FleetNode.unscoped.filter(pk=node_id).update(
            telemetry_seq=batch_seq, last_seen_at=timezone.now()
        )
    if dropped:
        report_dropped(node_id, "telemetry_rejected", dropped)
    return {
        "type": "batch_ack",
        "batch_seq": batch_seq,
        "accepted": len(outcomes),
        "dropped": dropped,
        "duplicate": False,
    }


def discovery_handle(node_id: int, msg: dict[str, Any]) -> dict[str, Any]:
    """No discovery command is in flight on this server yet: every device is dropped."""
    command_id = _str(msg, "command_id", 64)
    batch_seq = _int(msg, "batch_seq")
    devices = msg.get("devices")
    count = len(devices) if isinstance(devices, list) else 0
    report_dropped(node_id, "discovery_unknown_command", max(1, count))
    return {
        "type": "batch_ack",
        "command_id": command_id,
        "batch_seq": batch_seq,
        "accepted": 0,
        "dropped": count,
    }
