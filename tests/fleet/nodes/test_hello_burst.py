"""The control stream under a connect burst: a hello whose database work is queued behind
others' is not closed by the 5 s deadline, work for a socket that is gone is skipped, and the
signing key is decrypted once per process (bench.control_stream, docs/performance.md).

In-process (``WebsocketCommunicator``) so the hello's database work can be slowed down.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from fleet import crypto
from fleet.models import FleetNode, NodeCommand
from fleet.nodes import keys, ownership, stream
from fleetnode import protocol
from tests.conftest import OrgWorld, make_world
from tests.fleet.nodes.support import FakeNode, enroll, session_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def node_and_token(transactional_db: None) -> tuple[FakeNode, str]:
    world = make_world("alpha")
    node = enroll(world.users["admin"])
    return node, session_token(node)


def slowed(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[float]:
    """``hello_handle`` as if queued behind a burst: it starts ``seconds`` late."""
    real, started = stream.hello_handle, []

    def late(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        started.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(stream, "hello_handle", late)
    return started


async def open_stream(token: str) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    socket = WebsocketCommunicator(application, "/ws/nodes/control/", headers=headers)
    connected, _ = await socket.connect(timeout=10)
    assert connected
    return socket


async def test_the_hello_deadline_counts_to_the_hello_frame_not_to_its_database_work(
    node_and_token: tuple[FakeNode, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, token = node_and_token
    monkeypatch.setattr(protocol, "HELLO_TIMEOUT_S", 2.0)
    slowed(monkeypatch, 3.5)  # the work finishes 1.5 s after the deadline
    socket = await open_stream(token)
    await socket.send_to(text_data=json.dumps(node.hello()))
    welcome = json.loads(await socket.receive_from(timeout=10))
    assert welcome["type"] == "welcome" and welcome["node_id"] == node.node_id
    commands = [json.loads(await socket.receive_from(timeout=10)) for _ in range(2)]
    assert [c["kind"] for c in commands] == ["node_key", "assign_miners"]
    await socket.disconnect()


async def test_no_hello_frame_still_closes_4408(
    node_and_token: tuple[FakeNode, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "HELLO_TIMEOUT_S", 0.5)
    socket = await open_stream(node_and_token[1])
    closed = await socket.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_HELLO_TIMEOUT}


async def test_a_node_that_left_during_its_hello_costs_no_signed_commands(
    node_and_token: tuple[FakeNode, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, token = node_and_token
    started = slowed(monkeypatch, 1.0)
    signed: list[int] = []
    real = ownership.commands_on_hello

    def recorded(node_row: FleetNode, *args: Any) -> list[dict[str, Any]]:
        signed.append(node_row.pk)
        return real(node_row, *args)

    monkeypatch.setattr(ownership, "commands_on_hello", recorded)
    socket = await open_stream(token)
    await socket.send_to(text_data=json.dumps(node.hello()))
    await asyncio.sleep(0.2)
    await socket.disconnect()  # the node gave up while its hello was queued
    await asyncio.sleep(1.5)
    assert started, "the queued hello ran to its end"

    def stored() -> tuple[int, str]:
        row = FleetNode.unscoped.get(pk=node.node_id)
        return NodeCommand.unscoped.filter(node_id=node.node_id).count(), row.channel_name

    assert signed == []
    # no node_key / assign_miners signed, and the connection the hello attached is cleared
    assert await database_sync_to_async(stored)() == (0, "")


def test_the_signing_key_is_decrypted_once_per_process_and_rotation_still_works(
    org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.services.keys import data_keys_rotate

    keys.private_keys_forget()
    calls: list[str] = []
    real = crypto.decrypt

    def counting(blob: bytes | memoryview, *, org_id: int, label: str) -> str:
        calls.append(label)
        return real(blob, org_id=org_id, label=label)

    monkeypatch.setattr(crypto, "decrypt", counting)
    first = keys.command_key_active(org_a.org.pk)
    one = keys.private_key(first)
    assert keys.private_key(keys.command_key_active(org_a.org.pk)) is one
    assert len(calls) == 1
    # a new key (rotation) is a new kid: decrypted, and the old one still signs its rotation
    old, new = keys.command_key_replace(org_a.org.pk)
    two = keys.private_key(new)
    assert protocol.public_bytes(two) == bytes(new.public_key) != bytes(old.public_key)
    assert keys.private_key(old) is one and len(calls) == 2
    # re-encrypted under a newer data key: the envelope's version changed, read again
    data_keys_rotate(org=org_a.org)
    crypto.forget_keys()
    before = len(calls)
    again = keys.private_key(keys.command_key_active(org_a.org.pk))
    assert protocol.public_bytes(again) == protocol.public_bytes(two)
    assert len(calls) == before + 1
    assert keys.private_key(keys.command_key_active(org_a.org.pk)) is again
    # and sequences stay strictly increasing through the single-statement take_seq
    seqs = [keys.take_seq(new) for _ in range(3)]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]


async def test_a_connect_burst_beyond_the_redis_pool_waits_instead_of_failing() -> None:
    import os

    from config.channel_layer import BlockingRedisChannelLayer

    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (the channel layer of a deployment)")
    host = {"address": url, "max_connections": 2, "pool_timeout": 20}
    layer = BlockingRedisChannelLayer(hosts=[host], prefix="rw-test-burst")
    channels = [await layer.new_channel() for _ in range(50)]
    # 50 consumers joining at once on a 2-connection pool: queued, none refused
    await asyncio.gather(*(layer.group_add("burst", c) for c in channels))
    await layer.group_send("burst", {"type": "x"})
    assert [(await layer.receive(c))["type"] for c in channels[:3]] == ["x", "x", "x"]
    await layer.flush()
    await layer.close_pools()


async def test_a_hello_that_fails_server_side_closes_1011_not_a_stuck_socket(
    node_and_token: tuple[FakeNode, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, token = node_and_token

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Timeout connecting to server")  # e.g. the database or Redis

    monkeypatch.setattr(stream, "hello_handle", broken)
    socket = await open_stream(token)
    await socket.send_to(text_data=json.dumps(node.hello()))
    closed = await socket.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 1011}
