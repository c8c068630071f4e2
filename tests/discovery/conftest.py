"""Discovery fixtures: an org with a confirmed fleet node, loopback allowed for the scans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from accounts.actor import Actor
from discovery import services
from discovery.models import DiscoveryRun
from fleet.models import FleetNode
from tests.conftest import OrgWorld, make_world
from tests.fleet.nodes.support import enroll

SCOPE = ["127.0.5.1-20"]


@dataclass
class NodeWorld:
    world: OrgWorld
    node: FleetNode

    @property
    def admin(self) -> Any:
        return self.world.users["admin"]


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def confirmed_node(world: OrgWorld, name: str = "node-1") -> FleetNode:
    fake = enroll(world.users["admin"])
    node = FleetNode.unscoped.get(pk=fake.node_id)
    FleetNode.unscoped.filter(pk=node.pk).update(name=name, channel_name="test-channel")
    node.refresh_from_db()
    return node


@pytest.fixture
def alpha(db: None, allow_loopback: None) -> NodeWorld:
    world = make_world("alpha")
    return NodeWorld(world, confirmed_node(world))


def node_run(
    nw: NodeWorld, targets: list[str] | None = None, ports: list[int] | None = None
) -> DiscoveryRun:
    """A node run as the server leaves it once the ``discover`` command is out."""
    import uuid

    run = services.run_create(
        actor=Actor.for_user(nw.admin),
        site=nw.world.sites[0],
        target_list=targets or SCOPE,
        ports=ports or [80, 4028],
        node=nw.node,
    )
    services.run_start(run, deadline_s=60, command_id=str(uuid.uuid4()))
    run.refresh_from_db()
    return run
