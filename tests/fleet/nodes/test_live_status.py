"""Node status messages for ``/ws/live/`` (fleet.nodes.live): what they carry, which group gets
them, and the sweep that publishes the changes made by the clock alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from accounts.actor import Actor
from fleet import live
from fleet.models import FleetNode
from fleet.nodes import lifecycle
from fleet.nodes.live import node_message, node_states_sweep
from fleet.nodes.state import ONLINE_WITHIN, STALE_WITHIN
from fleet.protocol import org_group
from tests.conftest import OrgWorld
from tests.fleet.nodes.support import enroll

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(live, "publish", lambda group, message: sent.append((group, message)))
    return sent


def _node(org: OrgWorld, seen_ago: dt.timedelta | None, channel: str = "") -> FleetNode:
    node = FleetNode.unscoped.get(pk=enroll(org.users["admin"]).node_id)
    node.last_seen_at = timezone.now() - seen_ago if seen_ago is not None else None
    node.channel_name = channel
    node.save(update_fields=["last_seen_at", "channel_name"])
    return node


def test_the_message_carries_state_and_no_secrets(org_a: OrgWorld) -> None:
    node = _node(org_a, dt.timedelta(seconds=1), channel="specific.x")
    message = node_message(node)
    assert message["type"] == "node"
    assert message["node"] == {
        "id": node.pk,
        "status": "confirmed",
        "state": "online",
        "connected": True,
        "last_seen_at": node.last_seen_at.isoformat() if node.last_seen_at else None,
        "agent_version": node.agent_version,
    }
    assert node_message(node, connected=False)["node"]["state"] == "stale"
    assert node.name not in str(message) and node.fingerprint not in str(message)


def test_the_sweep_publishes_only_nodes_that_crossed_a_bound(
    org_a: OrgWorld, org_b: OrgWorld, published: list[tuple[str, dict[str, Any]]]
) -> None:
    second = dt.timedelta(seconds=1)
    went_stale = _node(org_a, ONLINE_WITHIN + 10 * second, channel="specific.quiet")
    went_offline = _node(org_b, STALE_WITHIN + 10 * second)
    _node(org_a, 2 * second, channel="specific.fine")  # online, heartbeating
    _node(org_a, STALE_WITHIN + dt.timedelta(hours=1))  # offline long ago: told back then
    _node(org_a, None)  # never seen
    assert node_states_sweep() == 2
    by_node = {message["node"]["id"]: (group, message) for group, message in published}
    assert by_node[went_stale.pk][0] == org_group(org_a.org.pk)
    assert by_node[went_stale.pk][1]["node"]["state"] == "stale"
    assert by_node[went_offline.pk][0] == org_group(org_b.org.pk)  # its own org's group only
    assert by_node[went_offline.pk][1]["node"]["state"] == "offline"


def test_a_revoke_is_published_to_the_org_after_commit(
    org_a: OrgWorld,
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    node = _node(org_a, dt.timedelta(seconds=3), channel="specific.live")
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=node)
    assert [(g, m["node"]["status"], m["node"]["state"]) for g, m in published] == [
        (org_group(org_a.org.pk), "revoked", "revoked")
    ]
