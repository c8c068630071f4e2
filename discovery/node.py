"""A run through a fleet node: a signed ``discover`` command carrying the server-computed scope
(the exact addresses and ports), the node's ``discovery_batch`` frames ingested (only for an
in-flight command of that node; anything out of scope, non-private, over quota or malformed is
dropped and counted), each batch acked, the run ended by the final ack or its deadline.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.actor import Actor
from discovery import limits, services
from discovery.models import DiscoveryRun, Outcome, RunStatus, Via
from fleet import dial
from fleet.models import FleetNode
from fleet.nodes.commands import REPLY_GRACE_S, command_send_and_wait, command_sign
from fleet.nodes.commands import Outcome as CommandOutcome
from fleet.nodes.stream import report_dropped
from fleetnode.protocol import ProtocolError
from miners.scan import Found

UNKNOWN_COMMAND = "discovery_unknown_command"


def scan_ttl(run: DiscoveryRun) -> int:
    """How long a node may take: a silent /20 on four ports is ~16k connects of 1.5 s over
    256 workers (~100 s), plus identification."""
    return int(min(services.CLOUD_RUN_MAX_S, 60 + run.total // 256 * 8))


def discover_payload(run: DiscoveryRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "addresses": list(run.addresses),
        "ports": list(run.ports),
        "node_local_subnet": "node-local-subnet" in [t.lower() for t in run.targets],
        "max_devices": limits.MAX_ADDRESSES if not run.addresses else run.expanded_count,
        "batch_max": limits.MAX_BATCH_DEVICES,
        "deadline_s": max(1, scan_ttl(run) - REPLY_GRACE_S * 2),  # its final ack is in time
    }


def run_via_node(run: DiscoveryRun) -> DiscoveryRun | None:
    """Sign, send and wait for the final ack (any process: the channel layer carries it)."""
    started = discover_start(run)
    if not isinstance(started, tuple):
        return started
    signed, node_id, wait_s = started
    outcome = async_to_sync(command_send_and_wait)(signed, node_id, wait_s)
    return discover_finish(run, outcome)


def discover_start(run: DiscoveryRun) -> tuple[dict[str, Any], int, float] | DiscoveryRun | None:
    """The run's signed ``discover`` command, its node and how long to wait for the final ack,
    with the run started; or the run as it ended (node gone, command refused, started already)."""
    node = FleetNode.unscoped.filter(pk=run.node_id).first() if run.node_id else None
    if node is None or not node.channel_name:
        return services.run_finish(run.pk, Outcome.FAILED, error="The node is not connected.")
    ttl = scan_ttl(run)
    actor = Actor.system(f"discovery run {run.pk} by {run.actor_label}"[:200])
    try:
        _row, signed = command_sign(
            node=node, kind="discover", payload=discover_payload(run), actor=actor, ttl_s=ttl
        )
    except Exception as exc:  # an ApplicationError (not confirmed, too many in flight)
        return services.run_finish(run.pk, Outcome.FAILED, error=str(exc))
    if not services.run_start(run, deadline_s=ttl + REPLY_GRACE_S, command_id=signed["command_id"]):
        return run
    return signed, node.pk, ttl + REPLY_GRACE_S


def discover_finish(run: DiscoveryRun, outcome: CommandOutcome) -> DiscoveryRun | None:
    """The run ended by its command's final ack (or the wait running out)."""
    if outcome.status == "busy":
        return services.run_finish(run.pk, Outcome.BUSY, error=services.node_busy_message())
    return services.run_finish(run.pk, services.outcome_of(outcome.status), error=outcome.error)


def _frame_str(msg: dict[str, Any], name: str, limit: int) -> str:
    value = msg.get(name)
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"discovery_batch.{name}: a string of at most {limit} characters")
    return value


def _frame_int(msg: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = msg.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ProtocolError(f"discovery_batch.{name}: a non-negative integer")
    return value


def batch_handle(node_id: int, msg: dict[str, Any]) -> dict[str, Any]:
    """One ``discovery_batch`` of ``node_id``; the ``batch_ack`` to send back."""
    command_id = _frame_str(msg, "command_id", 64)
    batch_seq = _frame_int(msg, "batch_seq")
    probed = _frame_int(msg, "probed", required=False)
    total = _frame_int(msg, "total", required=False)
    devices = msg.get("devices")
    if not isinstance(devices, list):
        raise ProtocolError("discovery_batch.devices: a list")
    ack: dict[str, Any] = {
        "type": "batch_ack",
        "command_id": command_id,
        "batch_seq": batch_seq,
        "accepted": 0,
        "dropped": len(devices),
        "duplicate": False,
    }
    try:
        uuid.UUID(command_id)
    except ValueError:
        run = None
    else:
        run = DiscoveryRun.unscoped.filter(
            command_id=command_id, node_id=node_id, via=Via.NODE, status=RunStatus.RUNNING
        ).first()
    if run is None:  # unknown, finished, or another node's command: nothing is stored
        report_dropped(node_id, UNKNOWN_COMMAND, max(1, len(devices)))
        return ack
    node = FleetNode.unscoped.get(pk=node_id)
    with transaction.atomic():
        locked = DiscoveryRun.unscoped.select_for_update().get(pk=run.pk)
        if batch_seq is not None and batch_seq <= locked.batch_seq:
            return {**ack, "dropped": 0, "duplicate": True}
        accepted: list[Found]
        if len(devices) > limits.MAX_BATCH_DEVICES:
            accepted, dropped = [], Counter({"malformed": len(devices)})
        else:
            accepted, dropped = services.found_checked(
                locked, devices, drivers=dial.driver_names(), quota_used=locked.found
            )
        fields: dict[str, Any] = {"batch_seq": batch_seq}
        if total and not locked.addresses:  # node-local-subnet: only the node knows its size
            fields["total"] = locked.total = min(total, limits.MAX_ADDRESSES * len(locked.ports))
        DiscoveryRun.unscoped.filter(pk=run.pk).update(**fields)
        result = services.devices_ingest(
            locked, accepted, node=node, rejected=dropped, probed=probed
        )
    refused = sum(result.rejected.values())
    if refused:
        report_dropped(node_id, "discovery_rejected", refused)
    return {**ack, "accepted": len(result.devices), "dropped": refused}
