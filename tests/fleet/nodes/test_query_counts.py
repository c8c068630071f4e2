"""Queries per control-stream step: a connect burst of thousands of nodes (bench.control_stream)
is bounded by what each session lookup, hello and ack costs. Counted with
``CaptureQueriesContext`` on the functions the consumer runs, in the order it runs them.

Before (the tree of 2026-12-01 morning, same test): a first hello cost 1 + 3 + 15 queries, a
reconnect 1 + 3 + 8, a final ack 4 (node_key 5); a node with 64 commands in flight got no
set-up commands at all (the in-flight limit raised inside the hello). Now 1 + 2 + 7, 1 + 2 + 4
and 2 (node_key 3).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from fleet.models import CommandKey, CommandStatus, FleetNode, Miner, NodeCommand
from fleet.nodes import keys, ownership, sessions, stream
from fleet.nodes.commands import command_sign
from fleetnode import protocol
from fleetnode.protocol import ProtocolError
from tests.conftest import OrgWorld
from tests.fleet.nodes.support import FakeNode, enroll, session_token

pytestmark = pytest.mark.django_db

MINERS = 5


def _queries(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        out = fn(*args, **kwargs)
    # savepoints are the test's transaction showing through, not round trips of production
    sql = [q["sql"] for q in ctx.captured_queries]
    return out, [q for q in sql if "SAVEPOINT" not in q]


@pytest.fixture
def paired(org_a: OrgWorld) -> tuple[FakeNode, str]:
    fake = enroll(org_a.users["admin"])
    row = FleetNode.unscoped.get(pk=fake.node_id)
    for i in range(MINERS):
        ownership.miner_pair_via_node(
            actor=Actor.for_user(org_a.users["admin"]),
            node=row,
            site=org_a.sites[0],
            host=f"10.9.0.{i + 1}",
            port=80,
            driver="antminer",
            username="root",
            password=f"pw{i}",
        )
    keys.command_key_active(org_a.org.pk)  # made once per org, on its first command
    return fake, session_token(fake)


def _hello(fake: FakeNode, token: str, **hello: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One connection's database work: session lookup, hello, the set-up commands."""
    found, auth_q = _queries(sessions.session_authenticate, token)
    assert found is not None
    node, session = found
    (welcome, node, chain), hello_q = _queries(
        stream.hello_handle,
        node,
        session.expires_at,
        fake.hello(**hello),
        channel="c1",
        replica="r",
    )
    assert welcome["type"] == "welcome" and welcome["command_keys"]
    commands, cmd_q = _queries(ownership.commands_on_hello, node, chain)
    return commands, {"session": len(auth_q), "hello": len(hello_q), "commands": len(cmd_q)}


def _ack(node_id: int, command: dict[str, Any], status: str) -> int:
    msg = {"type": "ack", "command_id": command["command_id"], "status": status}
    relay, queries = _queries(stream.ack_handle, node_id, msg)
    assert relay is not None
    return len(queries)


def test_a_hello_and_a_reconnect_cost_a_few_queries(paired: tuple[FakeNode, str]) -> None:
    fake, token = paired
    commands, first = _hello(fake, token)
    assert [c["kind"] for c in commands] == ["node_key", "assign_miners"]
    assert len(commands[1]["payload"]["miners"]) == MINERS
    assert commands[1]["seq"] == commands[0]["seq"] + 1  # one block of seq, in order
    # session 1; hello: attach UPDATE + the org's keys; commands: data-key lock (SELECT FOR
    # UPDATE, the key's envelope, UPDATE — once per node, ever), miners, poll interval, one
    # block of seq, one INSERT
    assert first == {"session": 1, "hello": 2, "commands": 7}, first
    for command in commands:  # the agent acks both; node_key ok marks the key delivered
        assert _ack(fake.node_id, command, "accepted") == 2  # the command, one UPDATE
        final = _ack(fake.node_id, command, "ok")
        assert final == (3 if command["kind"] == "node_key" else 2), final
    assert set(NodeCommand.unscoped.values_list("status", flat=True)) == {CommandStatus.OK}

    # a reconnect (what a restart storm is made of): the data key is delivered and stored
    again, counts = _hello(fake, token)
    assert [c["kind"] for c in again] == ["assign_miners"]
    assert counts == {"session": 1, "hello": 2, "commands": 4}, counts
    assert counts["session"] + counts["hello"] + counts["commands"] == 7
    # and the set-up commands verify against the key the welcome named
    key = CommandKey.unscoped.get(kid=again[0]["kid"])
    assert protocol.verify_command(bytes(key.public_key), again[0])


def test_in_flight_commands_never_block_a_reconnects_set_up(paired: tuple[FakeNode, str]) -> None:
    fake, token = paired
    node = FleetNode.unscoped.get(pk=fake.node_id)
    for _ in range(64):  # MAX_IN_FLIGHT: the operator's commands are refused now
        command_sign(node=node, kind="ping", payload={}, actor=Actor.system("t"))
    commands, _counts = _hello(fake, token)
    assert commands[-1]["kind"] == "assign_miners"


def test_a_reconnect_naming_the_current_assignment_gets_no_resend(
    paired: tuple[FakeNode, str],
) -> None:
    """The hello's ``assignment_version`` (the set the agent polls, from its state): the same
    set is not signed, stored and acked again on every reconnect; any change to it is."""
    fake, token = paired
    commands, _ = _hello(fake, token)
    for command in commands:
        _ack(fake.node_id, command, "ok")
    version = commands[-1]["payload"]["version"]
    assert isinstance(version, str) and len(version) == 32

    again, counts = _hello(fake, token, assignment_version=version)
    assert again == []
    assert counts == {"session": 1, "hello": 2, "commands": 2}, counts  # miners, poll interval
    # an agent that lost its set, or an older agent that doesn't say: the set is sent
    assert [c["kind"] for c in _hello(fake, token)[0]] == ["assign_miners"]
    assert [c["kind"] for c in _hello(fake, token, assignment_version="0" * 32)[0]] == [
        "assign_miners"
    ]
    # what the set carries changed (an address, a password, the poll interval): sent again
    miner = Miner.unscoped.filter(node_id=fake.node_id).order_by("id").first()
    assert miner is not None
    Miner.unscoped.filter(pk=miner.pk).update(host="10.9.0.99")
    moved = _hello(fake, token, assignment_version=version)[0]
    assert [c["kind"] for c in moved] == ["assign_miners"]
    assert moved[0]["payload"]["version"] != version
    newer = moved[0]["payload"]["version"]
    Miner.unscoped.filter(pk=miner.pk).update(credential_version=miner.credential_version + 1)
    assert _hello(fake, token, assignment_version=newer)[0] != []


def test_a_bad_assignment_version_is_a_protocol_error(paired: tuple[FakeNode, str]) -> None:
    fake, token = paired
    found = sessions.session_authenticate(token)
    assert found is not None
    for bad in (7, "x" * 65, ["a"]):
        with pytest.raises(ProtocolError, match="assignment_version"):
            stream.hello_handle(
                found[0],
                found[1].expires_at,
                fake.hello(assignment_version=bad),
                channel="c1",
                replica="r",
            )
