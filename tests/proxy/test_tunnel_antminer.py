"""A node-owned stock Antminer through the proxy, end to end: the browser asks replica B, the
node's control stream is held by replica A, and the node (the real agent) answers the rig's
HTTP Digest challenge on its web port with the credentials sealed to it. The same route, map
and refusals as a direct Antminer; another org's user gets 404."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from accounts.actor import Actor
from accounts.models import ActivityEvent
from accounts.services.tokens import api_token_create
from fleet.models import FleetNode, Miner
from fleet.nodes import ownership
from fleetnode.state import State
from proxy.access import node_rig
from tests.conftest import OrgWorld
from tests.fleet import conftest as fleet_fixtures
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.fleet.nodes.live import servers
from tests.fleet.nodes.tunnelkit import enroll_agent_state, fetch, running_agent
from tests.miners.conftest import PORT_OFFSET

__all__ = ["servers"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]
loopback_allowed = fleet_fixtures.loopback_allowed


@pytest.fixture
def barn_rigs() -> Iterator[ThreadedFleet]:
    fleet = ThreadedFleet(
        proto=1, antminer=1, password=PASSWORD, port_offset=PORT_OFFSET, stats_delay=0.0, seed=17
    )
    yield fleet
    fleet.stop()


def _world(
    org: OrgWorld, rigs: ThreadedFleet, tmp_path: Path, server: str
) -> tuple[State, Miner, str]:
    """A node enrolled with the agent's state directory, a ProtoOS rig and an Antminer paired
    to it (the Antminer by its RPC port, as a scan of 4028 finds it)."""
    owner = org.users["owner"]
    state, node = enroll_agent_state(owner, tmp_path, server)
    actor = Actor.for_user(owner)
    proto = next(e for e in rigs.inventory if e["kind"] == "protoos")
    ownership.miner_pair_via_node(
        actor=actor,
        node=node,
        site=org.sites[0],
        host=proto["host"],
        port=proto["ports"]["http"],
        driver="protoos",
        password=PASSWORD,
        name="proto-in-barn",
    )
    entry = next(e for e in rigs.inventory if e["kind"] == "antminer")
    s19 = ownership.miner_pair_via_node(
        actor=actor,
        node=node,
        site=org.sites[0],
        host=entry["host"],
        port=entry["ports"]["rpc"],
        driver="antminer",
        username="root",
        password=PASSWORD,
        name="s19-in-barn",
    )
    token = api_token_create(actor=actor, user=owner, name="barn", org=org.org).secret
    return state, s19, token


def test_node_rig_dials_the_web_port_not_the_rpc_port(
    org_a: OrgWorld, barn_rigs: ThreadedFleet, tmp_path: Path
) -> None:
    _, s19, _ = _world(org_a, barn_rigs, tmp_path, "http://127.0.0.1:9")
    entry = next(e for e in barn_rigs.inventory if e["kind"] == "antminer")
    assert s19.node_id is not None
    FleetNode.unscoped.filter(pk=s19.node_id).update(channel_name="specific.test!x")
    s19.refresh_from_db()
    rig = node_rig(Miner.unscoped.select_related("node").get(pk=s19.pk))
    assert s19.port == entry["ports"]["rpc"]
    assert rig.port == entry["ports"]["http"]


async def test_node_owned_antminer_through_another_replica(
    org_a: OrgWorld,
    org_b: OrgWorld,
    barn_rigs: ThreadedFleet,
    servers: Callable[[], str],
    tmp_path: Path,
) -> None:
    replica_a, replica_b = servers(), servers()
    state, s19, token = await sync_to_async(_world)(org_a, barn_rigs, tmp_path, replica_a)
    owner_b = org_b.users["owner"]
    other = await sync_to_async(
        lambda: api_token_create(actor=Actor.for_user(owner_b), user=owner_b, name="b").secret
    )()
    entry = next(e for e in barn_rigs.inventory if e["kind"] == "antminer")
    rig = barn_rigs.fleet.miner(entry["host"])
    base = f"{replica_b}/api-proxy/miners/{s19.pk}/cgi-bin"
    async with running_agent(state), aiohttp.ClientSession() as http:
        # a read: the node answered the digest challenge; the challenge never reaches us
        status, headers, body = await fetch(http, "GET", f"{base}/get_system_info.cgi", token)
        assert status == 200, body
        assert json.loads(body)["serinum"] == rig.serial
        assert "WWW-Authenticate" not in headers and headers["Cache-Control"] == "no-store"
        status, _, body = await fetch(http, "GET", f"{base}/stats.cgi", token)
        assert status == 200 and "STATS" in json.loads(body), body

        # a write the map allows: applied on the simulator, audited
        status, _, body = await fetch(
            http,
            "POST",
            f"{base}/blink.cgi",
            token,
            data=b'{"blink":"true"}',
            headers={"Content-Type": "application/json"},
        )
        assert status == 200 and json.loads(body) == {"code": "B000"}, body
        assert await sync_to_async(barn_rigs.call)(_blinking(barn_rigs, entry["host"]))
        verbs = await sync_to_async(
            lambda: list(
                ActivityEvent.unscoped.filter(
                    verb="miner.proxy_write", target_id=str(s19.pk)
                ).values_list("details", flat=True)
            )
        )()
        assert any(d["path"] == "/cgi-bin/blink.cgi" and d["status"] == 200 for d in verbs)

        # the same refusals as a direct Antminer, before anything reaches the node
        status, _, _ = await fetch(http, "GET", f"{base}/passwd.cgi", token)
        assert status == 403
        status, _, _ = await fetch(http, "GET", f"{base}/reboot.cgi", token)
        assert status == 405
        status, _, body = await fetch(http, "POST", f"{base}/set_miner_conf.cgi", token)
        assert status == 403 and b"audited action" in body

        # another org: 404, nothing about the miner leaks
        status, _, body = await fetch(http, "GET", f"{base}/get_system_info.cgi", other)
        assert status == 404 and b"s19-in-barn" not in body


async def _blinking(rigs: ThreadedFleet, host: str) -> bool:
    return rigs.fleet.miner(host).locate_on(rigs.fleet.clock.now())
