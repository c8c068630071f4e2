"""The proxy to node-owned miners, end to end: the browser's request reaches replica B, the
node's control stream is held by replica A, the node (the real agent) dials the rig with the
credentials sealed to it. Same API as a direct rig; bodies stream; a browser that leaves
cancels the request on the node; another org's user gets 404."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from yarl import URL

from accounts.actor import Actor
from accounts.models import ActivityEvent
from accounts.services.tokens import api_token_create
from tests.conftest import OrgWorld
from tests.fleet import conftest as fleet_fixtures
from tests.fleet.conftest import ThreadedFleet
from tests.fleet.nodes.live import servers
from tests.fleet.nodes.tunnelkit import World, fetch, make_world, running_agent, tunnel_rigs, until
from tests.support import free_port

__all__ = ["servers", "tunnel_rigs"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # the rigs live on 127.x: pairing them to a node checks DISCOVERY_ALLOWED_NETWORKS
    pytest.mark.usefixtures("loopback_allowed"),
]
loopback_allowed = fleet_fixtures.loopback_allowed


@pytest.fixture
def world(
    org_a: OrgWorld,
    tunnel_rigs: ThreadedFleet,
    servers: Callable[[], str],
    tmp_path: Path,
) -> tuple[World, str]:
    replica_a, replica_b = servers(), servers()
    return make_world(org_a, tunnel_rigs, free_port(), tmp_path, replica_a), replica_b


def _other_org_token(org: OrgWorld) -> str:
    owner = org.users["owner"]
    return api_token_create(actor=Actor.for_user(owner), user=owner, name="other org").secret


async def test_node_owned_miner_through_another_replica(
    world: tuple[World, str], org_b: OrgWorld
) -> None:
    w, replica_b = world
    base = f"{replica_b}/api-proxy/miners"
    other = await sync_to_async(_other_org_token)(org_b)
    await w.bigrig.start()
    try:
        async with running_agent(w.state) as client, aiohttp.ClientSession() as http:
            # a read: answered by the rig through the node, our response headers
            target = f"{base}/{w.proto.pk}/api/v1/mining/target"
            status, headers, body = await fetch(http, "GET", target, w.token)
            assert status == 200, body
            before = json.loads(body)
            assert "power_target_watts" in json.dumps(before)
            assert headers["Cache-Control"] == "no-store"
            assert headers["X-Frame-Options"] == "DENY"
            assert "Set-Cookie" not in headers
            assert "aiohttp" not in headers.get("Server", "")  # the rig's own is dropped

            # a write: applied on the simulator, audited like a direct one
            watts = 3000
            status, _, body = await fetch(
                http,
                "PUT",
                target,
                w.token,
                data=json.dumps({"power_target_watts": watts}),
                headers={"Content-Type": "application/json"},
            )
            assert status in (200, 202), body
            status, _, body = await fetch(http, "GET", target, w.token)
            assert str(watts) in body.decode(), body
            events = await sync_to_async(
                lambda: list(
                    ActivityEvent.unscoped.filter(
                        verb="miner.proxy_write", target_id=str(w.proto.pk)
                    ).values_list("details", flat=True)
                )
            )()
            assert any(e["method"] == "PUT" and e["status"] in (200, 202) for e in events)

            # another org: 404, nothing about the miner leaks
            status, _, body = await fetch(http, "GET", target, other)
            assert status == 404 and b"proto-behind-node" not in body

            # the path rules hold before anything reaches the node
            raw = URL(f"{base}/{w.proto.pk}/api/v1/%2e%2e/auth/login", encoded=True)
            status, _, _ = await fetch(http, "GET", raw, w.token)
            assert status == 400

            # a large log streams: most of it arrives while the rig still holds the end
            logs = f"{base}/{w.big.pk}/api/v1/system/logs"
            async with http.get(logs, headers={"Authorization": f"Token {w.token}"}) as reply:
                assert reply.status == 200
                assert reply.headers["Content-Length"] == str(w.bigrig.size)
                got = 0
                while got < w.bigrig.size * 3 // 4:
                    got += len(await reply.content.readany())
                assert not w.bigrig.release.is_set() and w.bigrig.written < w.bigrig.size
                w.bigrig.release.set()
                got += len(await reply.read())
            assert got == w.bigrig.size
            await until("the tunnel ended on the node", lambda: not client.tunnels.open)

            # the browser leaves mid-body: the node stops the request to the rig
            w.bigrig.release.clear()
            w.bigrig.written = 0
            cancelled = client.tunnels.finished.get("cancelled", 0)
            async with http.get(logs, headers={"Authorization": f"Token {w.token}"}) as reply:
                assert reply.status == 200
                await reply.content.readexactly(512 * 1024)
                reply.close()
            await until(
                "the node cancelled the tunnel",
                lambda: (
                    client.tunnels.finished.get("cancelled", 0) > cancelled
                    and not client.tunnels.open
                ),
            )
            await until("the rig's request was cut", lambda: w.bigrig.aborted >= 1)
            assert w.bigrig.written < w.bigrig.size
    finally:
        w.bigrig.release.set()
        await w.bigrig.stop()
