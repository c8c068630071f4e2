"""A node with tunnels, end to end: real daphne replicas (``servers``), the real agent's
``Client`` running in the test's event loop (so a test can look at its tunnels), a simulated
ProtoOS rig and a ``BigRig`` that streams a large log on demand — all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from yarl import URL

from accounts.actor import Actor
from accounts.models import User
from accounts.services.tokens import api_token_create
from fleet.models import FleetNode, Miner
from fleet.nodes import ownership
from fleetnode.client import Client
from fleetnode.node import Node
from fleetnode.protocol import fingerprint, public_bytes
from fleetnode.state import NodeConfig, State
from miners import Registry, default_drivers
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.fleet.nodes.support import FakeNode, enroll
from tests.miners.conftest import PORT_OFFSET
from tests.support import free_port

BIG_PASSWORD = "big-rig-pass-9"


@dataclass
class BigRig:
    """A ProtoOS-shaped rig on loopback: login, and ``GET /api/v1/system/logs`` streaming
    ``size`` bytes in 64 KiB writes; the last write waits for ``release`` (so a test can look
    while the body is in flight). ``written`` counts what it sent, ``aborted`` its broken
    connections."""

    host: str = "127.0.0.1"
    port: int = 0
    size: int = 8 * 1024 * 1024
    release: asyncio.Event = field(default_factory=asyncio.Event)
    written: int = 0
    aborted: int = 0
    logins: int = 0
    runner: web.AppRunner | None = None

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != BIG_PASSWORD:
            return web.json_response({"error": {"code": "UNAUTHORIZED"}}, status=401)
        self.logins += 1
        return web.json_response({"access_token": f"big-{self.logins}", "refresh_token": "r"})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer big-"):
            return web.json_response({"error": {"code": "UNAUTHORIZED"}}, status=401)
        reply = web.StreamResponse(headers={"Content-Type": "text/plain"})
        reply.content_length = self.size
        await reply.prepare(request)
        block = b"x" * 65536
        try:
            while self.written < self.size - len(block):
                await reply.write(block)
                self.written += len(block)
            await self.release.wait()
            rest = self.size - self.written
            await reply.write(b"y" * rest)
            self.written += rest
            await reply.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.aborted += 1
            raise
        return reply

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/auth/login", self._login)
        app.router.add_get("/api/v1/system/logs", self._logs)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self.runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class World:
    org: OrgWorld
    node_id: int
    state: State
    proto: Miner
    big: Miner
    token: str
    rigs: ThreadedFleet
    bigrig: BigRig


def enroll_agent_state(owner: User, tmp_path: Path, server: str) -> tuple[State, FleetNode]:
    """Enroll a node for ``owner`` whose identity, config and key are in the state directory
    the agent will use (``tmp_path / "node-state"``), as ``fleetnode enroll`` leaves it."""
    state = State(tmp_path / "node-state")
    identity = state.identity(create=True)
    fake = enroll(owner, FakeNode(identity=identity, box=state.sealing_key()))
    state.set_config(
        NodeConfig(server, fake.node_id, "barn-node", fingerprint(public_bytes(identity)))
    )
    state.set_api_key(fake.api_key)
    return state, FleetNode.unscoped.get(pk=fake.node_id)


def make_world(
    org: OrgWorld, rigs: ThreadedFleet, bigrig_port: int, tmp_path: Path, server: str
) -> World:
    """Enroll a node with the state directory the agent will use, and pair two rigs to it."""
    owner = org.users["owner"]
    state, node = enroll_agent_state(owner, tmp_path, server)
    actor = Actor.for_user(owner)
    entry = next(e for e in rigs.inventory if e["kind"] == "protoos")
    proto = ownership.miner_pair_via_node(
        actor=actor,
        node=node,
        site=org.sites[0],
        host=entry["host"],
        port=entry["ports"]["http"],
        driver="protoos",
        password=PASSWORD,
        name="proto-behind-node",
    )
    big = ownership.miner_pair_via_node(
        actor=actor,
        node=node,
        site=org.sites[0],
        host="127.0.0.1",
        port=bigrig_port,
        driver="protoos",
        password=BIG_PASSWORD,
        name="big-behind-node",
    )
    token = api_token_create(actor=actor, user=owner, name="tunnel tests", org=org.org).secret
    return World(org, node.pk, state, proto, big, token, rigs, BigRig(port=bigrig_port))


@pytest.fixture
def world(
    org_a: OrgWorld,
    tunnel_rigs: ThreadedFleet,
    servers: Callable[[], str],
    tmp_path: Path,
    settings: Any,
) -> World:
    """A node enrolled with two rigs behind it, its server a daphne from ``servers``."""
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the rigs behind the node are on 127.x
    return make_world(org_a, tunnel_rigs, free_port(), tmp_path, servers())


@pytest.fixture
def tunnel_rigs() -> Iterator[ThreadedFleet]:
    fleet = ThreadedFleet(
        proto=1,
        antminer=0,
        password=PASSWORD,
        port_offset=PORT_OFFSET,
        stats_delay=0.0,
        seed=11,
    )
    yield fleet
    fleet.stop()


@contextlib.asynccontextmanager
async def running_agent(state: State, allow: str = "127.0.0.0/8") -> AsyncIterator[Client]:
    """The agent's control stream in this loop, tunnels allowed to loopback (the rigs')."""
    os.environ["FLEETNODE_TUNNEL_ALLOW"] = allow
    try:
        node = Node(state, registry=Registry(default_drivers(include_pyasic=False)))
        client = Client(node)
    finally:
        os.environ.pop("FLEETNODE_TUNNEL_ALLOW", None)
    task = asyncio.create_task(client.run())
    try:
        await until(
            "the node connected with its key and miners",
            lambda: (
                bool(client._status.get("connected"))
                and node.node_key is not None
                and len(node.assignment.miners) == 2
            ),
            timeout=30,
        )
        yield client
    finally:
        client.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


async def until(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.05)


async def node_connected(node_id: int) -> bool:
    row = await sync_to_async(FleetNode.unscoped.get)(pk=node_id)
    return bool(row.channel_name)


def api_headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}", "Accept": "application/json", **extra}


async def fetch(
    http: aiohttp.ClientSession, method: str, url: str | URL, token: str, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    headers = api_headers(token, **kwargs.pop("headers", {}))
    async with http.request(method, url, headers=headers, **kwargs) as reply:
        return reply.status, dict(reply.headers), await reply.read()
