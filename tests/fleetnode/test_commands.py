"""Commands through the dispatcher: acks, slots, assignment with sealed node key and encrypted
credentials, polling and miner actions against real simulated miners."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetnode import protocol
from fleetnode.commands import Dispatcher, Final
from fleetnode.node import Node
from fleetnode.poller import Poller
from fleetnode.state import State
from fleetnode.trust import Command
from miners import Registry, default_drivers
from tests.fleetnode.conftest import NODE_ID, Signer, assignment_for


def make_node(state: State, signer: Signer) -> tuple[Node, list[dict[str, Any]]]:
    node = Node(state, registry=Registry(default_drivers(include_pyasic=False)))
    node.trust.welcome_keys([signer.welcome_key()])
    return node, []


async def settle(dispatcher: Dispatcher) -> None:
    for _ in range(200):
        tasks = [t for t in (*dispatcher.pool, *dispatcher.quick, dispatcher.exclusive) if t]
        if all(t.done() for t in tasks):
            return
        await asyncio.sleep(0.02)


def statuses(sent: list[dict[str, Any]], command_id: str) -> list[str]:
    return [a["status"] for a in sent if a["command_id"] == command_id]


def sealed_key(node: Node, key: bytes) -> dict[str, Any]:
    public = node.sealing.public_key().public_bytes_raw()
    return {"sealed": protocol.seal_to_node(public, NODE_ID, key)}


async def test_accepted_then_one_final_ack(state: State, signer: Signer) -> None:
    node, sent = make_node(state, signer)
    dispatcher = Dispatcher(node, sent.append)
    ping = signer.command("ping")
    dispatcher.handle(ping)
    await settle(dispatcher)
    assert statuses(sent, ping["command_id"]) == ["accepted", "ok"]


async def test_refusals_are_acked_rejected_and_counted(state: State, signer: Signer) -> None:
    node, sent = make_node(state, signer)
    dispatcher = Dispatcher(node, sent.append)
    ping = signer.command("ping")
    dispatcher.handle(ping)
    await settle(dispatcher)
    dispatcher.handle(ping)  # replay
    unsigned = signer.command("reboot", {"miner_id": 1, "params": {}})
    del unsigned["sig"]
    dispatcher.handle(unsigned)
    dispatcher.handle({"type": "command"})  # no id: logged and counted only
    await settle(dispatcher)
    assert statuses(sent, ping["command_id"]) == ["accepted", "ok", "rejected"]
    replay_ack = sent[-2]
    assert "replayed" in replay_ack["error"]
    assert statuses(sent, unsigned["command_id"]) == ["rejected"]
    text = node.metrics.render().decode()
    assert 'fleetnode_commands_rejected_total{reason="replayed"} 1.0' in text
    assert 'fleetnode_commands_rejected_total{reason="unsigned"} 1.0' in text
    assert 'fleetnode_commands_rejected_total{reason="malformed"} 1.0' in text


async def test_one_exclusive_slot_and_a_bounded_pool_answer_busy_beyond(
    state: State, signer: Signer
) -> None:
    node, sent = make_node(state, signer)
    release = asyncio.Event()

    async def slow(command: Command) -> Final:
        await release.wait()
        return Final("ok")

    handlers = {"discover": slow, "reboot": slow, "blink": slow}
    dispatcher = Dispatcher(node, sent.append, pool_size=2, handlers=handlers)
    scans = [signer.command("discover", {"scope": {}}) for _ in range(2)]
    actions = [
        signer.command(k, {"miner_id": 1, "params": {}}) for k in ("reboot", "blink", "reboot")
    ]
    for frame in (*scans, *actions):
        dispatcher.handle(frame)
    ping = signer.command("ping")
    dispatcher.handle(ping)  # housekeeping is never blocked by the slots
    await asyncio.sleep(0.05)
    assert statuses(sent, ping["command_id"]) == ["accepted", "ok"]
    assert statuses(sent, scans[1]["command_id"]) == ["busy"]
    assert statuses(sent, actions[2]["command_id"]) == ["busy"]
    release.set()
    await settle(dispatcher)
    for frame in (scans[0], actions[0], actions[1]):
        assert statuses(sent, frame["command_id"]) == ["accepted", "ok"]
    again = signer.command("discover", {"scope": {}})
    dispatcher.handle(again)  # the slot is free again
    await settle(dispatcher)
    assert statuses(sent, again["command_id"]) == ["accepted", "ok"]


async def test_a_crashing_handler_fails_one_command_not_the_node(
    state: State, signer: Signer
) -> None:
    node, sent = make_node(state, signer)

    async def broken(command: Command) -> Final:
        raise RuntimeError("bug")

    dispatcher = Dispatcher(node, sent.append, handlers={"ping": broken})
    frame = signer.command("ping")
    dispatcher.handle(frame)
    await settle(dispatcher)
    assert statuses(sent, frame["command_id"]) == ["accepted", "failed"]
    assert sent[-1]["error"] == "node error: RuntimeError"


async def test_node_key_assignment_polling_and_a_reboot_on_real_rigs(
    state: State, signer: Signer, rigs: Any
) -> None:
    node, sent = make_node(state, signer)
    dispatcher = Dispatcher(node, sent.append)
    data_key = os.urandom(32)
    key_cmd = signer.command("node_key", sealed_key(node, data_key))
    assign = signer.command("assign_miners", assignment_for(rigs.inventory, data_key))
    dispatcher.handle(key_cmd)
    await settle(dispatcher)
    dispatcher.handle(assign)
    await settle(dispatcher)
    assert statuses(sent, key_cmd["command_id"]) == ["accepted", "ok"]
    assert sent[-1] == {
        "type": "ack",
        "command_id": assign["command_id"],
        "status": "ok",
        "result": {"miners": 2},
    }
    assert state.node_key() == data_key
    assert "password" not in state.path("assignment.json").read_text()

    outcomes = await Poller(node.registry).cycle(
        node.assignment.miners, node_key=node.node_key, node_id=NODE_ID
    )
    assert [o["error"] for o in outcomes] == [None, None]
    assert {o["detail"] for o in outcomes} == {"full"}
    assert all(o["status"]["hashrate_ths"] is not None for o in outcomes)

    reboot = signer.command("reboot", {"miner_id": 1, "params": {}})
    dispatcher.handle(reboot)
    await settle(dispatcher)
    assert statuses(sent, reboot["command_id"]) == ["accepted", "ok"]
    host = rigs.inventory[0]["host"]
    assert rigs.miner(host).rebooting(rigs.clock.now())

    bad = signer.command("set_power_target", {"miner_id": 2, "params": {"watts": 5}})
    stranger = signer.command("blink", {"miner_id": 99, "params": {}})
    dispatcher.handle(bad)
    dispatcher.handle(stranger)
    await settle(dispatcher)
    assert sent[-2]["status"] == "rejected" and "watts" in sent[-2]["result"]["errors"]
    assert sent[-1]["status"] == "rejected" and "not assigned" in sent[-1]["error"]


async def test_credentials_need_the_right_node_key(state: State, signer: Signer, rigs: Any) -> None:
    node, sent = make_node(state, signer)
    dispatcher = Dispatcher(node, sent.append)
    other_nodes_key = os.urandom(32)
    dispatcher.handle(
        signer.command("assign_miners", assignment_for(rigs.inventory, other_nodes_key))
    )
    await settle(dispatcher)
    outcomes = await Poller(node.registry).cycle(
        node.assignment.miners, node_key=None, node_id=NODE_ID
    )
    assert {o["error"]["kind"] for o in outcomes} == {"auth_failed"}
    node.node_key = os.urandom(32)  # this node's key: doesn't open another node's credentials
    outcomes = await Poller(node.registry).cycle(
        node.assignment.miners, node_key=node.node_key, node_id=NODE_ID
    )
    assert all(
        "doesn't open" in o["error"]["message"] or "does not open" in o["error"]["message"]
        for o in outcomes
    )
    wrong_seal = {
        "sealed": protocol.seal_to_node(
            X25519PrivateKey.generate().public_key().public_bytes_raw(), NODE_ID, os.urandom(32)
        )
    }
    frame = signer.command("node_key", wrong_seal)
    dispatcher.handle(frame)
    await settle(dispatcher)
    assert statuses(sent, frame["command_id"]) == ["accepted", "rejected"]


async def test_bad_assignments_are_rejected_and_the_old_one_stays(
    state: State, signer: Signer
) -> None:
    node, sent = make_node(state, signer)
    dispatcher = Dispatcher(node, sent.append)
    good = {
        "miners": [
            {
                "id": 1,
                "host": "10.0.0.5",
                "port": 80,
                "driver": "protoos",
                "device_info": {},
                "credential": None,
            }
        ],
        "poll_interval_s": 1,
    }
    dispatcher.handle(signer.command("assign_miners", good))
    await settle(dispatcher)
    assert node.assignment.poll_interval_s == 5.0  # clamped
    for miners in (
        "all",
        [{"id": "1", "host": "h", "port": 80, "driver": "protoos"}],
        [{"id": 1, "host": "h", "port": 0, "driver": "protoos"}],
        [{"id": 1, "host": "h", "port": 80, "driver": "nope"}],
        [{"id": 1, "host": "h" * 300, "port": 80, "driver": "protoos"}],
        [{"id": 1, "host": "h", "port": 80, "driver": "protoos", "device_info": {"ports": []}}],
        [{"id": 1, "host": "h", "port": 80, "driver": "protoos", "credential": "plain"}],
    ):
        dispatcher.handle(signer.command("assign_miners", {"miners": miners}))
        await settle(dispatcher)
        assert sent[-1]["status"] == "rejected", miners
    assert list(node.assignment.miners) == [1]
    restarted = Node(State(state.dir), registry=node.registry)
    assert list(restarted.assignment.miners) == [1]


async def test_the_hello_names_the_assignment_it_polls_also_after_a_restart(
    state: State, signer: Signer
) -> None:
    node, sent = make_node(state, signer)
    assert "assignment_version" not in node.hello()  # nothing assigned yet: the server sends it
    dispatcher = Dispatcher(node, sent.append)
    payload = {"miners": [], "poll_interval_s": 10, "version": "a" * 32}
    dispatcher.handle(signer.command("assign_miners", payload))
    await settle(dispatcher)
    assert node.hello()["assignment_version"] == "a" * 32
    restarted = Node(State(state.dir), registry=node.registry)
    assert restarted.hello()["assignment_version"] == "a" * 32  # kept in the state directory
    dispatcher.handle(signer.command("assign_miners", {**payload, "version": 7}))
    await settle(dispatcher)
    assert sent[-1]["status"] == "rejected" and node.hello()["assignment_version"] == "a" * 32
