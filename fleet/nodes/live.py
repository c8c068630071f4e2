"""Node status on ``/ws/live/`` (contracts.md "WebSockets for browsers"): the org's group gets
``{"type": "node", "node": NodeLive}`` whenever a node's state changes — online (a hello, or a
heartbeat after a silence), stale (its stream closed, or it went quiet), offline (five minutes
without a word), revoked. The nodes page (static/js/nodes-live.js) updates its row from it.

Events come from where they happen: the control-stream consumer (hello, heartbeat after a gap,
disconnect), ``lifecycle.node_revoke`` (after commit), and the housekeeping sweep for the two
changes that are only the clock passing (``node_states_sweep``). No names or secrets travel:
the page already has the row; the message carries ids, states and the agent version.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from django.db.models import Q
from django.utils import timezone

from fleet import live
from fleet.models import FleetNode, NodeStatus
from fleet.nodes.state import ONLINE_WITHIN, STALE_WITHIN, connection_state
from fleet.protocol import org_group

# The housekeeping task runs every 30 s; a sweep looks back twice that, so a late run misses
# nothing (a state published twice is the same state).
SWEEP_WINDOW = dt.timedelta(seconds=60)


class NodeLive(TypedDict):
    id: int
    status: str  # confirmed / revoked
    state: str  # online / stale / offline / pending / revoked
    connected: bool
    last_seen_at: str | None
    agent_version: str


class NodeMessage(TypedDict):
    type: str
    node: NodeLive


def node_message(
    node: FleetNode, *, connected: bool | None = None, now: dt.datetime | None = None
) -> NodeMessage:
    """The message for ``node`` as it is now (``connected``: override the stored stream)."""
    attached = bool(node.channel_name) if connected is None else connected
    if node.status == NodeStatus.REVOKED:
        attached = False
    state = connection_state(attached, node.last_seen_at, now, status=str(node.status))
    return {
        "type": "node",
        "node": {
            "id": node.pk,
            "status": str(node.status),
            "state": state,
            "connected": attached,
            "last_seen_at": node.last_seen_at.isoformat() if node.last_seen_at else None,
            "agent_version": node.agent_version,
        },
    }


def node_status_publish(node: FleetNode, *, connected: bool | None = None) -> None:
    """Tell the org's browsers (any replica) this node's state; from sync or async code."""
    live.publish(org_group(node.org_id), node_message(node, connected=connected))


def node_states_sweep(*, now: dt.datetime | None = None) -> int:
    """Publish the nodes whose state changed by the clock alone since the last sweep: online →
    stale (no heartbeat for three intervals) and stale → offline (five minutes). Returns how
    many were published."""
    now = now or timezone.now()
    since = now - SWEEP_WINDOW
    crossed = Q()
    for bound in (ONLINE_WITHIN, STALE_WITHIN):
        crossed |= Q(last_seen_at__gt=since - bound, last_seen_at__lte=now - bound)
    nodes = FleetNode.unscoped.filter(crossed, status=NodeStatus.CONFIRMED).only(
        "id", "org_id", "status", "channel_name", "last_seen_at", "agent_version"
    )
    count = 0
    for node in nodes.iterator():
        live.publish(org_group(node.org_id), node_message(node, now=now))
        count += 1
    return count
