"""Terminal sessions against a real sshd, through the real ASGI app."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.actor import Actor
from config.asgi import application
from terminals.models import SessionState, SshHost, TerminalSession
from terminals.services.hosts import host_add, host_retrust
from terminals.services.sessions import session_open
from tests.conftest import OrgWorld
from tests.fleet.test_live import session_headers
from tests.terminals.conftest import Sshd

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def add_host(world: OrgWorld, sshd: Sshd) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.users["admin"]),
        site=world.sites[0],
        name="rig ssh",
        address="127.0.0.1",
        port=sshd.port,
        username="root",
        auth_method="key",
        secret=sshd.client_key,
    )


async def open_socket(user: Any, session_id: int) -> WebsocketCommunicator:
    headers = await sync_to_async(session_headers)(user)
    socket = WebsocketCommunicator(application, f"/ws/terminals/{session_id}/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def read_until(socket: WebsocketCommunicator, needle: bytes, seen: bytearray) -> int:
    """Collects output frames into ``seen`` (acking them) until ``needle``; the next seq. A
    needle that came in a frame an earlier call already read is found without waiting (0: no
    new frame read)."""
    seq = 0
    if needle in seen:
        return seq
    for _ in range(500):
        frame = await socket.receive_output(timeout=10)
        if frame["type"] == "websocket.close":
            raise AssertionError(f"closed {frame}")
        if frame.get("bytes"):
            start = struct.unpack(">Q", frame["bytes"][:8])[0]
            data = frame["bytes"][8:]
            assert start == seq or seq == 0
            seen += data
            seq = start + len(data)
            await socket.send_to(text_data=json.dumps({"type": "ack", "seq": seq}))
            if needle in seen:
                return seq
    raise AssertionError(f"{needle!r} not in {bytes(seen)!r}")


async def attach(socket: WebsocketCommunicator, last_seq: int = 0) -> dict[str, Any]:
    await socket.send_to(text_data=json.dumps({"type": "attach", "last_seq": last_seq}))
    event = json.loads((await socket.receive_output(timeout=30))["text"])
    assert event["type"] == "attached", event
    return event


async def type_(socket: WebsocketCommunicator, text: str) -> None:
    await socket.send_to(text_data=json.dumps({"type": "input", "data": text}))


async def test_tofu_resize_and_exact_replay_after_a_dropped_socket(
    org_a: OrgWorld, sshd: Sshd
) -> None:
    host = await sync_to_async(add_host)(org_a, sshd)
    user = org_a.users["operator"]
    row = await sync_to_async(session_open)(
        actor=Actor.for_user(user), host=host, cols=100, rows=30
    )
    socket = await open_socket(user, row.pk)
    await attach(socket)
    seen = bytearray()
    await type_(socket, "stty size; echo ready-$((6*7))\n")
    seq = await read_until(socket, b"ready-42", seen)
    assert b"30 100" in seen
    pinned = await sync_to_async(SshHost.unscoped.get)(pk=host.pk)
    assert pinned.host_key.startswith("ssh-ed25519 ") and pinned.host_key_fingerprint
    await socket.send_to(text_data=json.dumps({"type": "resize", "cols": 132, "rows": 43}))
    await type_(socket, "sleep 1; stty size; echo gone-$((2*3))\n")
    await socket.disconnect()  # dropped: the output keeps arriving while nobody watches
    await asyncio.sleep(2.5)
    state = await sync_to_async(lambda: TerminalSession.unscoped.get(pk=row.pk).state)()
    assert state == SessionState.DETACHED
    again = await open_socket(user, row.pk)
    event = await attach(again, last_seq=seq)
    assert event["seq"] == seq and event["missed"] == 0
    missed = bytearray()
    await read_until(again, b"gone-6", missed)
    assert b"43 132" in missed
    await type_(again, "exit\n")
    for _ in range(50):
        frame = await again.receive_output(timeout=10)
        if frame["type"] == "websocket.close":
            assert frame["code"] == 1000
            break
    ended = await sync_to_async(TerminalSession.unscoped.get)(pk=row.pk)
    assert ended.state == SessionState.CLOSED and ended.bytes_out > 0


async def test_changed_host_key_blocks_until_retrust(org_a: OrgWorld, sshd: Sshd) -> None:
    host = await sync_to_async(add_host)(org_a, sshd)
    user = org_a.users["operator"]
    first = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, first.pk)
    await attach(socket)
    await socket.disconnect()
    sshd.new_host_key()
    second = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, second.pk)
    await socket.send_to(text_data=json.dumps({"type": "attach", "last_seq": 0}))
    error = json.loads((await socket.receive_output(timeout=30))["text"])
    assert error["type"] == "error"
    assert (await socket.receive_output(timeout=5))["code"] == 4412
    changed = await sync_to_async(SshHost.unscoped.get)(pk=host.pk)
    assert changed.presented_key and changed.presented_key != changed.host_key
    await sync_to_async(host_retrust)(actor=Actor.for_user(org_a.users["admin"]), host=changed)
    third = await sync_to_async(session_open)(actor=Actor.for_user(user), host=changed)
    socket = await open_socket(user, third.pk)
    await attach(socket)
    await socket.disconnect()


async def test_other_org_and_other_user_get_4404(
    org_a: OrgWorld, org_b: OrgWorld, sshd: Sshd
) -> None:
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(
        actor=Actor.for_user(org_a.users["operator"]), host=host
    )
    for user in (org_b.users["owner"], org_a.users["admin"]):
        socket = await open_socket(user, row.pk)
        assert (await socket.receive_output(timeout=5))["code"] == 4404
    anonymous = WebsocketCommunicator(
        application,
        f"/ws/terminals/{row.pk}/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")],
    )
    await anonymous.connect(timeout=5)
    assert (await anonymous.receive_output(timeout=5))["code"] == 4401


async def test_per_host_cap(org_a: OrgWorld, sshd: Sshd) -> None:
    from accounts.errors import ApplicationError

    host = await sync_to_async(add_host)(org_a, sshd)
    actor = Actor.for_user(org_a.users["operator"])
    for _ in range(2):
        await sync_to_async(session_open)(actor=actor, host=host)
    with pytest.raises(ApplicationError):
        await sync_to_async(session_open)(actor=actor, host=host)


async def test_flow_control_bounds_memory_under_yes(org_a: OrgWorld, sshd: Sshd) -> None:
    from terminals import manager

    host = await sync_to_async(add_host)(org_a, sshd)
    user = org_a.users["operator"]
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await type_(socket, "yes\n")  # and never ack
    await asyncio.sleep(3)
    session = manager.get(row.pk)
    assert session is not None and session.paused
    sent = 0
    while not await socket.receive_nothing(timeout=0.2):
        frame = await socket.receive_output(timeout=1)
        sent += len(frame.get("bytes") or b"") - 8
    assert sent <= manager.HIGH_WATER
    # stopped reading: the ring holds at most a high-water mark (plus one read) past the ack
    assert session.ring.end - session.floor < manager.HIGH_WATER + 256 * 1024
    await socket.send_to(text_data=json.dumps({"type": "input", "data": "\x03"}))
    await session.close("test over", 4410)
