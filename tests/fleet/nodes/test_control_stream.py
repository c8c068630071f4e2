"""Control-stream conformance against real daphne processes, with a raw WebSocket client.

Close codes (contracts.md): 4400 malformed, 4401 session, 4403 revoked, 4408 no hello,
4409 replaced, 4429 rate limited. The routing test runs two server processes sharing
PostgreSQL and the Redis channel layer: the node is on one, the command comes from the other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from django.db import connection
from django.utils import timezone

from accounts.actor import Actor
from accounts.services.tokens import api_token_create
from fleet.models import FleetNode, NodeCommand, NodeSession, NodeStatus
from fleet.nodes import lifecycle
from fleet.nodes.secrets import secret_hash
from fleetnode import protocol
from tests.conftest import make_world
from tests.fleet.nodes.live import servers
from tests.fleet.nodes.support import FakeNode, enroll, session_token
from tests.fleet.nodes.wsclient import close_code, next_frame, open_stream, trusted_keys, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
__all__ = ["servers"]


@pytest.fixture
def node(transactional_db: None) -> FakeNode:
    world = make_world("alpha")
    return enroll(world.users["admin"])


async def in_thread(work: Callable[[], Any]) -> Any:
    """Database work from the scenario: in a thread, its connection closed after."""

    def run() -> Any:
        try:
            return work()
        finally:
            connection.close()

    return await asyncio.to_thread(run)


def _run(scenario: Callable[[aiohttp.ClientSession], Any]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            return await scenario(session)

    return asyncio.run(main())


async def _welcomed(
    session: aiohttp.ClientSession, base: str, node: FakeNode, token: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await open_stream(session, base, token)
    await ws.send_str(json.dumps(node.hello()))
    return ws, await until(ws, "welcome")


def test_hello_welcome_and_the_first_signed_commands(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        ws, welcome = await _welcomed(session, base, node, token)
        assert welcome["node_id"] == node.node_id
        assert abs(welcome["server_time"] - time.time()) < 5
        assert welcome["heartbeat_interval_s"] == protocol.HEARTBEAT_INTERVAL_S
        keys = trusted_keys(welcome)
        commands = [await until(ws, "command"), await until(ws, "command")]
        for command in commands:
            assert protocol.verify_command(keys[command["kid"]], command)
        await ws.send_str(
            json.dumps(
                {
                    "type": "heartbeat",
                    "ts": time.time(),
                    "health": {"cpu_percent": 12.5, "load1": 0.3},
                }
            )
        )
        await ws.close()
        return commands

    commands = _run(scenario)
    assert [c["kind"] for c in commands] == ["node_key", "assign_miners"]
    assert commands[0]["seq"] < commands[1]["seq"]
    sealed = commands[0]["payload"]["sealed"]
    assert len(protocol.open_sealed(node.box, node.node_id, sealed)) == 32
    row = FleetNode.unscoped.get(pk=node.node_id)
    assert row.encryption_key is not None and row.agent_version == "1.0.0"
    deadline = time.monotonic() + 5
    while FleetNode.unscoped.get(pk=node.node_id).health.get("cpu_percent") != 12.5:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_no_hello_closes_4408_after_about_five_seconds(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> tuple[int | None, float]:
        ws = await open_stream(session, base, token)
        started = time.monotonic()
        code = await close_code(ws, 15)
        return code, time.monotonic() - started

    code, waited = _run(scenario)
    assert code == protocol.CLOSE_HELLO_TIMEOUT
    assert 4.5 <= waited <= 8.0, waited


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "teleport"}',
        '{"type": "heartbeat"}',  # before hello
        "x" * (protocol.MAX_FRAME_BYTES + 1),
        b"\x00binary",
    ],
    ids=["garbage", "array", "untyped", "unknown", "not-hello-first", "oversized", "binary"],
)
def test_bad_frames_close_4400(servers: Any, node: FakeNode, frame: str | bytes) -> None:
    base, token = servers(), session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> int | None:
        ws = await open_stream(session, base, token)
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        return await close_code(ws)

    assert _run(scenario) == protocol.CLOSE_MALFORMED


def test_bad_frames_after_welcome_close_4400(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> list[int | None]:
        codes = []
        for bad in (
            {"type": "ack", "command_id": 5, "status": "ok"},
            {"type": "ack", "command_id": "x", "status": "maybe"},
            {"type": "heartbeat", "health": {"cpu_percent": "lots"}},
            {"type": "heartbeat", "cpu_percent": "lots", "uptime_s": [1]},  # not in "health"
            {"type": "telemetry_batch", "batch_seq": -1, "outcomes": []},
            {"type": "hello", "node_id": node.node_id, "agent_version": "1"},
        ):
            ws, _welcome = await _welcomed(session, base, node, token)
            await ws.send_str(json.dumps(bad))
            codes.append(await close_code(ws))
        wrong = await open_stream(session, base, token)
        await wrong.send_str(json.dumps(node.hello(node_id=node.node_id + 1000)))
        codes.append(await close_code(wrong))
        return codes

    assert _run(scenario) == [protocol.CLOSE_MALFORMED] * 7


def test_missing_invalid_and_expired_sessions_close_4401(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)
    short = session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> list[int | None]:
        codes = []
        for bad in (None, "rws_forged", node.api_key):  # an api key is not a session
            ws = await open_stream(session, base, bad)
            codes.append(await close_code(ws))
        # expiring mid-stream: the server closes when the session ends
        await in_thread(
            lambda: NodeSession.unscoped.filter(token_hash=secret_hash(short)).update(
                expires_at=timezone.now() + dt.timedelta(seconds=2)
            )
        )
        ws, _welcome = await _welcomed(session, base, node, short)
        codes.append(await close_code(ws, 10))
        ws = await open_stream(session, base, short)  # and it can't be used again
        codes.append(await close_code(ws))
        ws, _welcome = await _welcomed(session, base, node, token)  # the other one still works
        await ws.close()
        return codes

    assert _run(scenario) == [protocol.CLOSE_UNAUTHENTICATED] * 5


def test_a_second_connection_replaces_the_first_with_4409(servers: Any, node: FakeNode) -> None:
    first_server, second_server = servers(), servers()
    token = session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> tuple[int | None, str]:
        old, _ = await _welcomed(session, first_server, node, token)
        new, _ = await _welcomed(session, second_server, node, token)  # another replica
        code = await close_code(old)
        await asyncio.sleep(0.5)
        channel = await in_thread(lambda: FleetNode.unscoped.get(pk=node.node_id).channel_name)
        await new.close()
        return code, channel

    code, channel = _run(scenario)
    assert code == protocol.CLOSE_REPLACED
    assert channel  # the newer connection holds the node


def test_revoked_closes_4403_at_once_and_cannot_come_back(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)
    admin = FleetNode.unscoped.get(pk=node.node_id).org.memberships.get(role__slug="admin").user

    async def scenario(session: aiohttp.ClientSession) -> tuple[int | None, float, int | None]:
        ws, _ = await _welcomed(session, base, node, token)
        started = time.monotonic()
        await in_thread(
            lambda: lifecycle.node_revoke(
                actor=Actor.for_user(admin), node=FleetNode.unscoped.get(pk=node.node_id)
            )
        )
        code = await close_code(ws)
        took = time.monotonic() - started
        again = await open_stream(session, base, token)
        return code, took, await close_code(again)

    code, took, again = _run(scenario)
    assert code == protocol.CLOSE_REVOKED and took < 3
    assert again == protocol.CLOSE_REVOKED
    assert FleetNode.unscoped.get(pk=node.node_id).status == NodeStatus.REVOKED


def test_flooding_closes_4429(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)
    beat = json.dumps({"type": "heartbeat", "ts": 0, "health": {}})

    async def scenario(session: aiohttp.ClientSession) -> int | None:
        ws, _ = await _welcomed(session, base, node, token)
        for _ in range(400):
            if ws.closed:
                break
            await ws.send_str(beat)
        return await close_code(ws)

    assert _run(scenario) == protocol.CLOSE_RATE_LIMITED


def test_a_command_from_one_replica_reaches_a_node_on_another(servers: Any, node: FakeNode) -> None:
    """The node streams to server A; an operator pings it through server B's API."""
    node_server, api_server = servers(), servers()
    token = session_token(node)
    row = FleetNode.unscoped.select_related("org").get(pk=node.node_id)
    admin = row.org.memberships.get(role__slug="admin").user
    api_token = api_token_create(actor=Actor.system("tests"), user=admin, name="t", org=row.org)

    async def scenario(session: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
        ws, welcome = await _welcomed(session, node_server, node, token)
        keys = trusted_keys(welcome)

        async def play_node() -> dict[str, Any]:
            while True:
                command = await next_frame(ws, 30)
                if command.get("kind") == "ping":
                    assert protocol.verify_command(keys[command["kid"]], command)
                    assert command["expires_at"] > time.time()
                    for status in ("accepted", "ok"):
                        ack = {
                            "type": "ack",
                            "command_id": command["command_id"],
                            "status": status,
                            "result": {},
                        }
                        await ws.send_str(json.dumps(ack))
                    return command

        agent = asyncio.create_task(play_node())
        async with session.post(
            f"{api_server}/api/v1/fleet-nodes/{node.node_id}/ping",
            headers={"Authorization": f"Token {api_token.secret}"},
        ) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        command = await agent
        await ws.close()
        return answer, command

    answer, command = _run(scenario)
    assert answer["status"] == "ok" and answer["command_id"] == command["command_id"]
    stored = NodeCommand.unscoped.get(command_id=command["command_id"])
    assert stored.status == "ok" and stored.seq == command["seq"] and stored.kid == command["kid"]


def test_an_unanswered_command_times_out(servers: Any, node: FakeNode) -> None:
    base, token = servers(), session_token(node)
    row = FleetNode.unscoped.select_related("org").get(pk=node.node_id)
    admin = row.org.memberships.get(role__slug="admin").user
    api_token = api_token_create(actor=Actor.system("tests"), user=admin, name="t", org=row.org)

    async def scenario(session: aiohttp.ClientSession) -> tuple[dict[str, Any], float]:
        ws, _ = await _welcomed(session, base, node, token)
        started = time.monotonic()
        async with session.post(
            f"{base}/api/v1/fleet-nodes/{node.node_id}/ping",
            headers={"Authorization": f"Token {api_token.secret}"},
        ) as response:
            answer = await response.json()
        await ws.close()
        return answer, time.monotonic() - started

    answer, took = _run(scenario)
    assert answer["status"] == "timeout" and took < 20
    assert NodeCommand.unscoped.get(command_id=answer["command_id"]).status == "timeout"


def test_an_action_on_a_node_owned_miner_is_a_signed_command(
    servers: Any, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reboot from the Fleet API's job path reaches the node as a signed command with the
    miner's id; the node's final ack is the job item's result."""
    from fleet import tasks
    from fleet.models import Job, JobItem
    from fleet.nodes.ownership import miner_pair_via_node
    from fleet.services import jobs

    base, token = servers(), session_token(node)
    row = FleetNode.unscoped.select_related("org").get(pk=node.node_id)
    admin = row.org.memberships.get(role__slug="admin").user
    miner = miner_pair_via_node(
        actor=Actor.for_user(admin),
        node=row,
        site=row.org.sites.first(),
        host="10.20.0.5",
        port=80,
        driver="antminer",
    )
    monkeypatch.setattr(tasks.run_job, "delay", lambda job_id: None)
    job = jobs.job_create(
        actor=Actor.for_user(admin),
        org=row.org,
        kind="reboot",
        params={},
        miners=[miner],
        single=True,
    )

    async def scenario(session: aiohttp.ClientSession) -> dict[str, Any]:
        ws, welcome = await _welcomed(session, base, node, token)
        keys = trusted_keys(welcome)
        runner = asyncio.create_task(in_thread(lambda: jobs.job_execute(job.pk)))
        command = await until(ws, "command", 20, kind="reboot")
        assert protocol.verify_command(keys[command["kid"]], command)
        ack = {"type": "ack", "command_id": command["command_id"], "status": "ok", "result": {}}
        await ws.send_str(json.dumps(ack))
        await runner
        await ws.close()
        return command

    command = _run(scenario)
    assert command["payload"] == {"miner_id": miner.pk, "params": {}}
    assert Job.unscoped.get(pk=job.pk).done == 1
    assert JobItem.objects.get(job=job).status == "ok"
    assert NodeCommand.unscoped.get(command_id=command["command_id"]).job_item_id is not None


def test_drain_sends_goaway_then_1012(servers: Any, node: FakeNode) -> None:
    from django.core.management import call_command

    base, token = servers(), session_token(node)

    async def scenario(session: aiohttp.ClientSession) -> tuple[dict[str, Any], int | None]:
        ws, _ = await _welcomed(session, base, node, token)
        await asyncio.sleep(0.3)
        await in_thread(lambda: call_command("drain_nodes", "--max-reconnect-ms", "5000"))
        goaway = await until(ws, "goaway")
        return goaway, await close_code(ws)

    goaway, code = _run(scenario)
    assert 500 <= goaway["reconnect_after_ms"] <= 5000
    assert code == protocol.CLOSE_DRAINING
