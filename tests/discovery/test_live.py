"""Against the real ASGI app: a run's progress and found devices reach the operator's
``/ws/live/`` (and nobody in another org), and a node's ``discovery_batch`` on the control
stream is ingested and acked through the consumer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from discovery.models import DiscoveredDevice
from discovery.node import batch_handle
from tests.conftest import make_world
from tests.discovery.conftest import NodeWorld, confirmed_node, node_run
from tests.discovery.test_node_ingest import batch, device
from tests.fleet.nodes.support import FakeNode, enroll, session_token
from tests.fleet.test_live import connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_loopback")]


def two_orgs() -> tuple[NodeWorld, Any]:
    alpha = make_world("alpha")
    bravo = make_world("bravo")
    return NodeWorld(alpha, confirmed_node(alpha)), bravo


async def test_progress_and_devices_reach_the_operator_only() -> None:
    alpha, bravo = await sync_to_async(two_orgs)()
    run = await sync_to_async(node_run)(alpha)
    mine, _, _ = await connect(alpha.world.users["operator"])
    theirs, _, _ = await connect(bravo.users["operator"])
    await sync_to_async(batch_handle)(alpha.node.pk, batch(run, [device(serial="LIVE-1")]))
    while True:  # the run's start was published too: wait for the devices
        message = await mine.receive_json_from(timeout=5)
        if message["type"] == "discovery" and message["devices"]:
            break
    assert message["run"]["id"] == run.pk and message["run"]["found"] == 1
    assert message["devices"][0]["serial"] == "LIVE-1"
    assert await theirs.receive_nothing(timeout=1)
    await mine.disconnect()
    await theirs.disconnect()


def _node_with_run() -> tuple[FakeNode, str, Any]:
    world = make_world("alpha")
    fake = enroll(world.users["admin"])
    from fleet.models import FleetNode

    node = FleetNode.unscoped.get(pk=fake.node_id)
    FleetNode.unscoped.filter(pk=node.pk).update(channel_name="placeholder")
    node.refresh_from_db()
    run = node_run(NodeWorld(world, node))
    return fake, session_token(fake), run


async def test_a_batch_on_the_control_stream_is_ingested_and_acked() -> None:
    fake, token, run = await sync_to_async(_node_with_run)()
    socket = WebsocketCommunicator(
        application,
        "/ws/nodes/control/",
        headers=[(b"authorization", f"Bearer {token}".encode()), (b"host", b"127.0.0.1")],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.send_to(text_data=json.dumps(fake.hello()))
    frames: list[dict[str, Any]] = []
    await socket.send_to(text_data=json.dumps(batch(run, [device(serial="WIRE-1")])))
    while not any(f["type"] == "batch_ack" for f in frames):
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    ack = next(f for f in frames if f["type"] == "batch_ack")
    assert ack["command_id"] == str(run.command_id) and ack["accepted"] == 1
    row = await sync_to_async(DiscoveredDevice.unscoped.get)()
    assert row.serial == "WIRE-1" and row.node_id == fake.node_id
    await socket.disconnect()
