"""Signed commands: issue (sign, store), deliver through the node's channel-layer group, and
wait for the node's final ack on a per-command reply channel — never longer than the command's
own expiry plus a grace, so no operator waits forever.

Any process can command any node: the web replica or worker that issues a command needn't be
the one the node is connected to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Q
from django.utils import timezone

from accounts.actor import Actor
from accounts.errors import ApplicationError
from fleet.models import CommandKey, CommandStatus, FleetNode, NodeCommand, NodeStatus
from fleet.models.nodes import FINAL_COMMAND_STATUSES
from fleet.nodes.keys import command_key_active, private_key, take_seq
from fleet.nodes.metrics import COMMANDS
from fleetnode import protocol

DEFAULT_TTL_S = 60
REPLY_GRACE_S = 5
MAX_IN_FLIGHT = 64


def node_group(node_id: int) -> str:
    return f"fleetnode.{node_id}"


@dataclass(frozen=True)
class Outcome:
    command_id: str
    status: str
    result: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (CommandStatus.OK, CommandStatus.PARTIAL)


def command_sign(
    *,
    node: FleetNode,
    kind: str,
    payload: dict[str, Any],
    actor: Actor,
    ttl_s: int = DEFAULT_TTL_S,
    stored_payload: dict[str, Any] | None = None,
    job_item_id: int | None = None,
    key_id: int | None = None,
) -> tuple[NodeCommand, dict[str, Any]]:
    """Sign and record one command for ``node`` (by the org's active key, or ``key_id``)."""
    if kind not in protocol.COMMAND_KINDS:
        raise ApplicationError(f"Unknown command kind '{kind}'.", field="kind")
    if node.status != NodeStatus.CONFIRMED:
        raise ApplicationError("Only a confirmed node takes commands.")
    open_count = NodeCommand.unscoped.filter(
        node=node, status__in=[CommandStatus.SENT, CommandStatus.ACCEPTED]
    ).count()
    if open_count >= MAX_IN_FLIGHT:
        raise ApplicationError(f"The node has {open_count} commands in flight; try again later.")
    key = CommandKey.unscoped.get(pk=key_id) if key_id else command_key_active(node.org_id)
    (row, signed), *_ = _build(
        node,
        key,
        take_seq(key),
        [(kind, payload, stored_payload)],
        actor,
        ttl_s=ttl_s,
        job_item_id=job_item_id,
    )
    row.save(force_insert=True)
    COMMANDS.labels(kind, "sent").inc()
    return row, signed


CommandSpec = tuple[str, dict[str, Any], dict[str, Any] | None]  # kind, payload, stored payload


def commands_sign_set_up(
    *, node: FleetNode, key: CommandKey, specs: list[CommandSpec], actor: Actor
) -> list[dict[str, Any]]:
    """Sign and record the set-up commands a node gets on hello, by ``key`` (the org's active
    key, already read) in two queries: one block of ``seq`` values, one INSERT of the rows.

    Not counted against ``MAX_IN_FLIGHT``: without them the node can't work at all, and the
    commands still in flight from its previous connection never block its reconnect."""
    if not specs:
        return []
    if node.status != NodeStatus.CONFIRMED:
        raise ApplicationError("Only a confirmed node takes commands.")
    built = _build(node, key, take_seq(key, len(specs)), specs, actor)
    NodeCommand.unscoped.bulk_create([row for row, _ in built])
    for kind, _payload, _stored in specs:
        COMMANDS.labels(kind, "sent").inc()
    return [signed for _, signed in built]


def _build(
    node: FleetNode,
    key: CommandKey,
    first_seq: int,
    specs: list[CommandSpec],
    actor: Actor,
    *,
    ttl_s: int = DEFAULT_TTL_S,
    job_item_id: int | None = None,
) -> list[tuple[NodeCommand, dict[str, Any]]]:
    """Signed bodies and their (unsaved) rows, ``seq`` from ``first_seq`` on."""
    private = private_key(key)
    now = int(time.time())
    out = []
    for offset, (kind, payload, stored_payload) in enumerate(specs):
        if kind not in protocol.COMMAND_KINDS:
            raise ApplicationError(f"Unknown command kind '{kind}'.", field="kind")
        command_id = str(uuid.uuid4())
        body = {
            "type": "command",
            "command_id": command_id,
            "seq": first_seq + offset,
            "kind": kind,
            "actor": actor.label[:200],
            "issued_at": now,
            "expires_at": now + ttl_s,
            "payload": payload,
            "kid": key.kid,
        }
        row = NodeCommand(
            org_id=node.org_id,
            node=node,
            command_id=command_id,
            kid=key.kid,
            seq=first_seq + offset,
            kind=kind,
            payload=payload if stored_payload is None else stored_payload,
            actor_label=actor.label[:200],
            issued_at=dt.datetime.fromtimestamp(now, tz=dt.UTC),
            expires_at=dt.datetime.fromtimestamp(now + ttl_s, tz=dt.UTC),
            job_item_id=job_item_id,
        )
        out.append((row, protocol.sign_command(private, body)))
    return out


def command_finish(
    command_id: str,
    status: str,
    *,
    result: Any = None,
    error: str = "",
    row: NodeCommand | None = None,
) -> NodeCommand | None:
    """Record a final status once (the first final status wins). ``row``: the command as the
    caller just read it (saves the lookup); the conditional UPDATE decides either way."""
    if row is None:
        row = NodeCommand.unscoped.filter(command_id=command_id).first()
    if row is None or row.status in FINAL_COMMAND_STATUSES:
        return row
    now = timezone.now()
    updated = NodeCommand.unscoped.filter(
        pk=row.pk, status__in=[CommandStatus.SENT, CommandStatus.ACCEPTED]
    ).update(status=status, result=result, error=error[:500], finished_at=now)
    if updated:
        COMMANDS.labels(row.kind, status).inc()
        row.status, row.result, row.error, row.finished_at = status, result, error[:500], now
    else:  # another final status won the race: report that one
        row.refresh_from_db()
    return row


def commands_expire(*, now: dt.datetime | None = None) -> int:
    """Commands past their expiry plus a grace with no final ack: ``timeout``."""
    now = now or timezone.now()
    stale = NodeCommand.unscoped.filter(
        Q(status=CommandStatus.SENT) | Q(status=CommandStatus.ACCEPTED),
        expires_at__lt=now - dt.timedelta(seconds=REPLY_GRACE_S),
    )
    count = 0
    for command_id in stale.values_list("command_id", flat=True):
        command_finish(str(command_id), CommandStatus.TIMEOUT, error="No final ack in time.")
        count += 1
    return count


async def command_deliver(signed: dict[str, Any], node_id: int, reply_to: str = "") -> None:
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        node_group(node_id), {"type": "node.command", "command": signed, "reply_to": reply_to}
    )


async def command_run(
    *,
    node: FleetNode,
    kind: str,
    payload: dict[str, Any],
    actor: Actor,
    ttl_s: int = DEFAULT_TTL_S,
    stored_payload: dict[str, Any] | None = None,
    job_item_id: int | None = None,
) -> Outcome:
    """Sign, send and wait for the final ack (or ``timeout``) from any process."""
    if not node.channel_name:
        return Outcome("", CommandStatus.FAILED, error="The node is not connected.")
    _row, signed = await database_sync_to_async(command_sign)(
        node=node,
        kind=kind,
        payload=payload,
        actor=actor,
        ttl_s=ttl_s,
        stored_payload=stored_payload,
        job_item_id=job_item_id,
    )
    return await command_send_and_wait(signed, node.pk, ttl_s + REPLY_GRACE_S)


async def command_send_and_wait(signed: dict[str, Any], node_id: int, wait_s: float) -> Outcome:
    layer = get_channel_layer()
    assert layer is not None
    command_id = str(signed["command_id"])
    reply = await layer.new_channel("fleetnode.reply.")
    await command_deliver(signed, node_id, reply)
    deadline = time.monotonic() + wait_s
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(layer.receive(reply), min(2.0, remaining))
        except Exception:  # a quiet or hiccuping layer: the database decides
            row = await database_sync_to_async(_final)(command_id)
            if row is not None:
                return Outcome(command_id, row.status, row.result, row.error)
            continue
        status = str(message.get("status", ""))
        if status in protocol.FINAL_ACK_STATUSES or status == "busy":
            return Outcome(command_id, status, message.get("result"), str(message.get("error", "")))
    row = await database_sync_to_async(command_finish)(
        command_id, CommandStatus.TIMEOUT, error="No final ack in time."
    )
    if row is not None and row.status != CommandStatus.TIMEOUT:
        return Outcome(command_id, row.status, row.result, row.error)
    return Outcome(command_id, CommandStatus.TIMEOUT, error="The node did not answer in time.")


def _final(command_id: str) -> NodeCommand | None:
    row = NodeCommand.unscoped.filter(command_id=command_id).first()
    return row if row is not None and row.status in FINAL_COMMAND_STATUSES else None


def node_ping(*, actor: Actor, node: FleetNode) -> Outcome:
    """A signed ``ping`` to the node, answered through whichever replica holds its stream."""
    from asgiref.sync import async_to_sync

    from accounts.authz import authorize_on

    authorize_on(actor, "fleetnode:manage", node)
    if node.status != NodeStatus.CONFIRMED:
        what = "revoked" if node.status == NodeStatus.REVOKED else "not confirmed yet"
        raise ApplicationError(f"'{node.name}' is {what}: it can't be pinged.", field="node")
    return async_to_sync(command_run)(node=node, kind="ping", payload={}, actor=actor, ttl_s=10)
