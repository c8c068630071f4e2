"""Revoking and draining nodes; pushing control messages to their live streams."""

from __future__ import annotations

import random
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Organization
from accounts.services.activity import activity_record, records_refusals
from fleet.models import (
    CommandKey,
    CommandStatus,
    FleetNode,
    NodeCommand,
    NodeSession,
    NodeStatus,
)
from fleet.nodes.commands import node_group
from fleet.nodes.live import node_status_publish
from fleet.nodes.ownership import miners_release
from fleetnode import protocol


def stream_signal(node_id: int, message: dict[str, Any]) -> None:
    """Send a control message to every live stream of the node, on any replica."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(node_group(node_id), message)


@records_refusals("fleetnode.revoke")
def node_revoke(*, actor: Actor, node: FleetNode, reason: str = "") -> FleetNode:
    """One transaction: state revoked, api key and sessions dead, miners released, audited;
    then the live socket is closed with 4403 (after commit, so it can't race back in)."""
    authorize_on(actor, "fleetnode:manage", node)
    with transaction.atomic():
        node = FleetNode.unscoped.select_for_update().get(pk=node.pk)
        if node.status == NodeStatus.REVOKED:
            raise ApplicationError("This node is already revoked.")
        now = timezone.now()
        node.status = NodeStatus.REVOKED
        node.revoked_at = now
        node.revoked_by = actor.user
        node.save(update_fields=["status", "revoked_at", "revoked_by"])
        NodeSession.unscoped.filter(node=node, revoked_at__isnull=True).update(revoked_at=now)
        released = miners_release(node)
        NodeCommand.unscoped.filter(
            node=node, status__in=[CommandStatus.SENT, CommandStatus.ACCEPTED]
        ).update(status=CommandStatus.FAILED, error="The node was revoked.", finished_at=now)
        activity_record(
            actor=actor,
            verb="fleetnode.revoke",
            org=node.org_id,
            site=node.site_id,
            target=node,
            details={"released_miners": released, "reason": reason[:200]},
        )
        node_id = node.pk
        transaction.on_commit(lambda: stream_signal(node_id, {"type": "node.revoked"}))
        revoked = node
        transaction.on_commit(lambda: node_status_publish(revoked, connected=False))
    return node


def nodes_drain(*, max_reconnect_ms: int = 30_000, replica: str = "") -> int:
    """``goaway`` (a jittered ``reconnect_after_ms`` each) then close 1012, to every node
    connected (to ``replica`` only, when given). Returns how many were told."""
    nodes = FleetNode.unscoped.filter(status=NodeStatus.CONFIRMED).exclude(channel_name="")
    if replica:
        nodes = nodes.filter(replica=replica)
    count = 0
    for node_id in nodes.values_list("id", flat=True):
        delay = random.randint(max_reconnect_ms // 10, max(1, max_reconnect_ms))
        stream_signal(node_id, {"type": "node.goaway", "reconnect_after_ms": delay})
        count += 1
    return count


@records_refusals("fleetnode.rotate_command_key")
def command_key_rotate(*, actor: Actor, org: Organization) -> CommandKey:
    """A new command key for the org, introduced to every connected node by a ``key_rotation``
    signed with the old key (nodes offline now get the same on their next hello)."""
    from fleet.nodes.commands import command_deliver, command_sign
    from fleet.nodes.keys import command_key_replace

    authorize(actor, "fleetnode:manage", org.pk)
    old, new = command_key_replace(org.pk)
    payload = {"new_kid": new.kid, "new_public_key": protocol.b64encode(bytes(new.public_key))}
    connected = FleetNode.unscoped.filter(org=org, status=NodeStatus.CONFIRMED).exclude(
        channel_name=""
    )
    for node in connected:
        _row, signed = command_sign(
            node=node, kind="key_rotation", payload=payload, actor=actor, key_id=old.pk
        )
        async_to_sync(command_deliver)(signed, node.pk)
    activity_record(
        actor=actor,
        verb="fleetnode.rotate_command_key",
        org=org,
        target=new,
        details={"old_kid": old.kid, "new_kid": new.kid},
    )
    return new
