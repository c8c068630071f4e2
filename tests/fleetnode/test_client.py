"""The control-stream client against a scripted in-process server (aiohttp on loopback):
hello/welcome, heartbeats with host health, backfill in order, goaway, 4401, 4403, session
refresh before expiry, and garbage from the server that must not crash the node."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fleetnode import protocol
from fleetnode.backoff import Backoff
from fleetnode.client import Client, Stop
from fleetnode.node import Node
from miners import Registry, default_drivers
from tests.fleetnode.conftest import NODE_ID, Signer, enrolled_state

Script = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]


@dataclass
class FakeServer:
    signer: Signer
    scripts: list[Script] = field(default_factory=list)
    hellos: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    sessions: int = 0
    session_ttl: float = 900
    telemetry_seq: int = 0
    refuse_sessions: int = 0
    url: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def welcome(self) -> dict[str, Any]:
        return {
            "type": "welcome",
            "node_id": NODE_ID,
            "server_time": time.time(),
            "heartbeat_interval_s": 1,
            "session_expires_at": int(time.time() + self.session_ttl),
            "command_keys": [self.signer.welcome_key()],
            "telemetry_seq": self.telemetry_seq,
        }

    async def begin(self, request: web.Request) -> web.Response:
        if self.refuse_sessions:
            return web.json_response(
                {"detail": "This node is revoked."}, status=self.refuse_sessions
            )
        return web.json_response({"challenge": protocol.b64encode(os.urandom(32))})

    async def complete(self, request: web.Request) -> web.Response:
        self.sessions += 1
        return web.json_response(
            {"session_token": f"rws_{self.sessions}", "expires_at": time.time() + self.session_ttl}
        )

    async def control(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.tokens.append(request.headers.get("Authorization", ""))
        hello = json.loads((await ws.receive()).data)
        self.hellos.append(hello)
        await ws.send_str(json.dumps(self.welcome()))
        self.connected.set()
        script = self.scripts.pop(0) if self.scripts else self.serve
        await script(ws, hello)
        return ws

    async def serve(self, ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await self.frames(ws, lambda frame: False)

    async def frames(
        self, ws: web.WebSocketResponse, until: Callable[[dict[str, Any]], bool]
    ) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                self.received.append(frame)
                if frame["type"] == "telemetry_batch":
                    await ws.send_str(
                        json.dumps(
                            {
                                "type": "batch_ack",
                                "batch_seq": frame["batch_seq"],
                                "accepted": len(frame["outcomes"]),
                                "duplicate": False,
                            }
                        )
                    )
                if until(frame):
                    return


@pytest.fixture
async def server(signer: Signer) -> AsyncIterator[FakeServer]:
    fake = FakeServer(signer)
    app = web.Application()
    app.router.add_post("/api/v1/node-gateway/session/begin", fake.begin)
    app.router.add_post("/api/v1/node-gateway/session/complete", fake.complete)
    app.router.add_get("/ws/nodes/control/", fake.control)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Path, FakeServer], Client]]:
    """Clients on the fake server; any still running are stopped before the server goes."""
    made: list[Client] = []

    def make(tmp_path: Path, server: FakeServer) -> Client:
        state = enrolled_state(tmp_path / "node", server.url)
        node = Node(state, registry=Registry(default_drivers(include_pyasic=False)))
        made.append(Client(node, backoff=Backoff(base=0.05, cap=0.2)))
        return made[-1]

    yield make
    for client in made:
        client.stop()
    await asyncio.sleep(0.3)


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def running(client: Client) -> asyncio.Task[None]:
    return asyncio.create_task(client.run())


async def stop(client: Client, task: asyncio.Task[None]) -> None:
    client.stop()
    await asyncio.wait_for(task, 10)


async def test_hello_welcome_heartbeats_and_backfill_in_order(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    client = client_for(tmp_path, server)
    buffer = client.node.buffer
    for i in range(10):
        buffer.add(
            [
                {
                    "miner_id": 1,
                    "started": float(i),
                    "seconds": 0.1,
                    "detail": "summary",
                    "status": None,
                    "error": {"kind": "timeout", "message": "x"},
                }
            ]
        )
    server.telemetry_seq = 3  # the server already stored 1-3
    task = await running(client)
    await until(lambda: len(buffer) == 0 and any(f["type"] == "heartbeat" for f in server.received))
    hello = server.hellos[0]
    assert hello["node_id"] == NODE_ID and hello["buffered"] == 10 and hello["seq_hwm"] == {}
    assert len(protocol.b64decode(hello["encryption_key"])) == 32
    sent = [f["batch_seq"] for f in server.received if f["type"] == "telemetry_batch"]
    assert sent == [4, 5, 6, 7, 8, 9, 10]
    beat = next(f for f in server.received if f["type"] == "heartbeat")
    assert set(beat["health"]) == {
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "load1",
        "uptime_s",
    }
    assert beat["health"]["uptime_s"] > 0 and 0 <= beat["health"]["memory_percent"] <= 100
    assert server.tokens == ["Bearer rws_1"]
    assert client.node.trust.keys == {server.signer.kid: server.signer.public}
    await stop(client, task)
    assert client.node.state.status()["connected"] is False


async def test_commands_flow_and_acks_survive_into_the_stream(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    ping = server.signer.command("ping")

    async def command_then_listen(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(ping))
        await server.frames(ws, lambda f: f.get("status") == "ok")
        await server.serve(ws, hello)

    server.scripts.append(command_then_listen)
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(lambda: any(f.get("status") == "ok" for f in server.received))
    acks = [f for f in server.received if f["type"] == "ack"]
    assert [a["status"] for a in acks] == ["accepted", "ok"]
    assert client.node.state.seq_hwm() == {server.signer.kid: ping["seq"]}
    await stop(client, task)


async def test_garbage_from_the_server_is_counted_never_fatal(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    async def garbage(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        for frame in (
            "not json",
            "[1,2]",
            '{"no":"type"}',
            '{"type":"format_disk"}',
            '{"type":"command"}',
            '{"type":"batch_ack","batch_seq":"x"}',
            '{"type":"goaway","reconnect_after_ms":"soon"}',
            '{"type":"welcome"}',
            '{"type":"tunnel_open"}',
            "{" * 100000,
        ):
            await ws.send_str(frame)
        await ws.send_bytes(b"\x00\x01")
        await server.frames(ws, lambda f: f["type"] == "heartbeat")
        await server.serve(ws, hello)

    server.scripts.append(garbage)
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(lambda: any(f["type"] == "heartbeat" for f in server.received))
    assert not task.done()
    text = client.metrics.render().decode()
    assert "fleetnode_bad_frames_total 7.0" in text  # 5 unparseable, a bad batch_ack, binary
    assert len(server.hellos) == 1
    await stop(client, task)


async def test_goaway_is_obeyed(tmp_path: Path, server: FakeServer, client_for: Any) -> None:
    async def drain(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.send_str(json.dumps({"type": "goaway", "reconnect_after_ms": 700}))
        await ws.close(code=protocol.CLOSE_DRAINING)

    server.scripts.append(drain)
    client = client_for(tmp_path, server)
    started = time.monotonic()
    task = await running(client)
    await until(lambda: len(server.hellos) == 2)
    assert time.monotonic() - started >= 0.7
    await stop(client, task)


async def test_4401_gets_a_new_session_and_reconnects_at_once(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    async def expire(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.close(code=protocol.CLOSE_UNAUTHENTICATED)

    server.scripts.append(expire)
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(lambda: len(server.hellos) == 2)
    assert server.tokens == ["Bearer rws_1", "Bearer rws_2"]
    await stop(client, task)


async def test_4403_stops_the_node(tmp_path: Path, server: FakeServer, client_for: Any) -> None:
    async def revoke(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.close(code=protocol.CLOSE_REVOKED)

    server.scripts.append(revoke)
    client = client_for(tmp_path, server)
    with pytest.raises(Stop, match="revoked"):
        await asyncio.wait_for(client.run(), 10)
    assert client.node.state.status()["last_close"]["code"] == 4403


async def test_a_refused_api_key_stops_the_node(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    server.refuse_sessions = 403
    client = client_for(tmp_path, server)
    with pytest.raises(Stop, match="api key"):
        await asyncio.wait_for(client.run(), 10)


async def test_other_closes_back_off_and_reconnect(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    async def replaced(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.close(code=protocol.CLOSE_REPLACED)

    server.scripts += [replaced, replaced]
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(lambda: len(server.hellos) == 3)
    assert server.sessions == 1  # the session was still good
    assert 'fleetnode_closes_total{code="4409"} 2.0' in client.metrics.render().decode()
    await stop(client, task)


async def test_the_session_is_renewed_before_it_expires(
    tmp_path: Path, server: FakeServer, client_for: Any
) -> None:
    server.session_ttl = 61.0  # inside the 60 s refresh margin almost at once
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(lambda: len(server.hellos) >= 2)
    assert server.tokens[:2] == ["Bearer rws_1", "Bearer rws_2"]
    await stop(client, task)


async def test_acks_waiting_for_a_connection_are_bounded_counted_and_paced(
    tmp_path: Path, server: FakeServer, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetnode import client as client_module
    from fleetnode.client import MAX_OUTBOX

    monkeypatch.setattr(client_module, "SEND_RATE_PER_S", 400.0)
    monkeypatch.setattr(client_module, "SEND_BURST", 50.0)
    client = client_for(tmp_path, server)
    for i in range(MAX_OUTBOX + 3):
        client.send({"type": "ack", "command_id": f"c{i}", "status": "accepted"})
    assert len(client.outbox) == MAX_OUTBOX
    assert json.loads(client.outbox[0])["command_id"] == "c3"  # the oldest went
    assert "fleetnode_acks_dropped_total 3.0" in client.metrics.render().decode()
    task = await running(client)
    await server.connected.wait()
    started = time.monotonic()
    await until(lambda: sum(f["type"] == "ack" for f in server.received) == MAX_OUTBOX)
    assert time.monotonic() - started >= 0.9 * (MAX_OUTBOX - 50) / 400  # under the rate
    await stop(client, task)
