"""The agent's signed `discover`: scope checks before any packet, the exclusive slot, batches
streamed and acknowledged, resent after a reconnect, final ack ok/partial — against real
simulated miners on 127.x and (for the reconnect) the scripted control-stream server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fleetnode import discover
from fleetnode.commands import Dispatcher
from fleetnode.discover import Discovery, ScopeError, allowed_networks_from_env, parse_job
from fleetnode.node import Node
from fleetnode.state import State
from miners import Registry, default_drivers
from miners.sim import SimFleet
from tests.fleetnode.conftest import Signer
from tests.fleetnode.test_client import FakeServer, client_for, running, server, stop, until
from tests.miners.conftest import PORT_OFFSET
from tests.miners.test_scan import Silent

__all__ = ["client_for", "server"]  # fixtures shared with test_client

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
PORTS = [80 + PORT_OFFSET, 443 + PORT_OFFSET, 4028 + PORT_OFFSET]


class Wire:
    """The server side for a dispatcher: records frames, acks discovery batches (or not)."""

    def __init__(self, *, ack: bool = True) -> None:
        self.frames: list[dict[str, Any]] = []
        self.ack = ack
        self.dispatcher: Dispatcher | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if frame["type"] == "discovery_batch" and self.ack and self.dispatcher is not None:
            reply = {
                "type": "batch_ack",
                "command_id": frame["command_id"],
                "batch_seq": frame["batch_seq"],
                "accepted": len(frame["devices"]),
                "dropped": 0,
            }
            asyncio.get_running_loop().call_soon(self.dispatcher.batch_ack, reply)

    def acks(self, command_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "ack" and f["command_id"] == command_id]

    def batches(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "discovery_batch"]

    def devices(self) -> set[tuple[str, int, str, str]]:
        return {
            (d["host"], d["port"], d["driver"], d["serial"])
            for b in self.batches()
            for d in b["devices"]
        }


def dispatcher_for(state: State, signer: Signer, wire: Wire, **kwargs: Any) -> Dispatcher:
    registry = Registry(default_drivers(include_pyasic=False))
    node = Node(state, registry=registry)
    node.trust.welcome_keys([signer.welcome_key()])
    kwargs.setdefault("allowed", LOOPBACK)
    discovery = Discovery(wire.send, registry=registry, **kwargs)
    wire.dispatcher = Dispatcher(node, wire.send, discovery=discovery)
    return wire.dispatcher


async def finished(dispatcher: Dispatcher, timeout: float = 60) -> None:
    assert dispatcher.exclusive is not None
    await asyncio.wait_for(asyncio.shield(dispatcher.exclusive), timeout)


def expected(fleet: SimFleet) -> set[tuple[str, int, str, str]]:
    return {
        (e["host"], port, "protoos" if e["kind"] == "protoos" else "antminer", e["serial"])
        for e in fleet.inventory
        for port in e["ports"].values()
    }


def quiet_block() -> ipaddress.IPv4Network:
    """A 127.x /24 where nothing listens (sim_fleet's blocks may hold other sessions' rigs
    beside ours)."""
    busy = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            busy.add(ipaddress.IPv4Address(bytes.fromhex(fields[1].split(":")[0])[::-1]))
    for _ in range(100):
        block = ipaddress.IPv4Network(f"127.{random.randint(30, 39)}.{random.randint(0, 255)}.0/24")
        if not any(address in block for address in busy):
            return block
    raise RuntimeError("no quiet 127.x /24")


def neighbours(fleet: SimFleet, numbers: range) -> list[str]:
    base = ipaddress.ip_address(fleet.inventory[0]["host"])
    return [str(ipaddress.ip_address(int(base) - int(base) % 256 + n)) for n in numbers]


async def test_discover_streams_exactly_the_miners_in_scope_then_acks_ok(
    state: State, signer: Signer, sim_fleet: Any
) -> None:
    fleet = await sim_fleet(proto=2, antminer=2)
    addresses = [e["host"] for e in fleet.inventory] + neighbours(fleet, range(200, 220))
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire)
    command = signer.command("discover", {"addresses": addresses, "ports": PORTS})

    dispatcher.handle(command)
    await finished(dispatcher)

    acks = wire.acks(command["command_id"])
    assert [a["status"] for a in acks] == ["accepted", "ok"], acks
    total = len(addresses) * len(PORTS)
    assert acks[-1]["result"] == {
        "total": total,
        "probed": total,
        "found": len(expected(fleet)),
        "batches": len([b for b in wire.batches() if b["devices"]]),
        "unacked": 0,
        "skipped": 0,
    }
    assert wire.devices() == expected(fleet)
    batches = wire.batches()
    assert [b["batch_seq"] for b in batches] == list(range(1, len(batches) + 1))
    assert all(b["command_id"] == command["command_id"] for b in batches)
    assert batches[-1]["probed"] == batches[-1]["total"] == total
    assert wire.frames.index(acks[-1]) > wire.frames.index(batches[-1])  # the ack comes last
    device = next(b for b in batches if b["devices"])["devices"][0]
    assert set(device) == {
        "host",
        "port",
        "scheme",
        "driver",
        "make",
        "model",
        "firmware",
        "mac",
        "serial",
    }


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ({"addresses": ["8.8.8.8"], "ports": [80]}, "8.8.8.8 is not a private address"),
        ({"addresses": ["169.254.169.254"], "ports": [80]}, "169.254.169.254 is not a private"),
        ({"addresses": ["127.0.0.1"], "ports": [80]}, "127.0.0.1 is not a private"),
        ({"addresses": ["fe80::1"], "ports": [80]}, "fe80::1 is not a private"),
        ({"addresses": ["rig-7.lan"], "ports": [80]}, "not an IP address"),
        ({"addresses": ["10.0.0.1"], "ports": [0]}, "is not a port"),
        ({"addresses": ["10.0.0.1"], "ports": [True]}, "is not a port"),
        ({"addresses": ["10.0.0.1"], "ports": list(range(1, 258))}, "at most 256"),
        ({"addresses": [f"10.0.{i // 250}.{i % 250}" for i in range(4097)], "ports": [80]}, "4096"),
        ({"ports": [80]}, "names no address"),
        ({"addresses": "10.0.0.0/24", "ports": [80]}, "must be a list"),
        ({"addresses": ["10.0.0.1"]}, "ports must be a non-empty list"),
        ({"node_local_subnet": "yes", "ports": [80]}, "true or false"),
        ({"node_local_subnet": True, "ports": [80]}, "wider than /20"),
    ],
)
async def test_refused_scopes_send_no_packet(
    state: State, signer: Signer, silent: Silent, scope: dict[str, Any], reason: str
) -> None:
    await silent.listen("127.99.252.1", 4028)
    if isinstance(scope.get("addresses"), list) and len(scope["addresses"]) < 10:
        scope = {**scope, "addresses": ["127.99.252.1", *scope["addresses"]]}
    wire = Wire()
    dispatcher = dispatcher_for(
        state,
        signer,
        wire,
        allowed=[ipaddress.ip_network("127.99.252.0/24")],
        subnet=lambda: ipaddress.ip_network("10.1.0.0/16"),
    )
    command = signer.command("discover", scope)
    dispatcher.handle(command)
    await finished(dispatcher)
    acks = wire.acks(command["command_id"])
    assert [a["status"] for a in acks] == ["accepted", "rejected"]
    assert reason in acks[-1]["error"], acks[-1]["error"]
    assert wire.batches() == []
    assert silent.open == 0 and not silent.writers  # not even the allowed address was dialled


def test_the_allowlist_admits_listed_ranges_only() -> None:
    allowed = allowed_networks_from_env(
        {"FLEETNODE_DISCOVERY_ALLOWED_NETWORKS": "127.99.0.0/16, 100.64.0.0/10"}
    )
    job = parse_job({"addresses": ["127.99.1.2", "100.64.0.9"], "ports": [80]}, allowed=allowed)
    assert job.targets == [("127.99.1.2", 80), ("100.64.0.9", 80)]
    with pytest.raises(ScopeError, match="127.98.0.1"):
        parse_job({"addresses": ["127.98.0.1"], "ports": [80]}, allowed=allowed)
    with pytest.raises(ValueError, match="FLEETNODE_DISCOVERY_ALLOWED_NETWORKS"):
        allowed_networks_from_env({"FLEETNODE_DISCOVERY_ALLOWED_NETWORKS": "10.0.0.0/33"})
    for bad in ({"max_devices": 0}, {"deadline_s": "1"}, {"concurrency": 5000}):
        with pytest.raises(ScopeError):
            parse_job({"addresses": ["10.0.0.1"], "ports": [80], **bad}, allowed=[])


async def test_node_local_subnet_scans_the_interfaces_subnet(
    state: State, signer: Signer, sim_fleet: Any
) -> None:
    subnet = quiet_block()  # the whole /24 is scanned: nobody else's listener may be in it
    fleet = await sim_fleet(proto=1, antminer=1, base=str(subnet.network_address + 1))
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire, subnet=lambda: subnet)
    command = signer.command(
        "discover",
        {"node_local_subnet": True, "ports": PORTS, "connect_timeout_s": 0.5},
    )
    dispatcher.handle(command)
    await finished(dispatcher)
    acks = wire.acks(command["command_id"])
    assert [a["status"] for a in acks] == ["accepted", "ok"], acks
    assert acks[-1]["result"]["total"] == 254 * len(PORTS), acks[-1]
    assert wire.devices() == expected(fleet), (acks[-1], subnet, fleet.inventory)


def test_the_real_local_subnet_is_this_hosts() -> None:
    try:
        network = discover.local_subnet()
    except ScopeError as exc:  # a box without a default route says so clearly
        assert "default route" in str(exc) or "address" in str(exc)
        return
    assert isinstance(network, ipaddress.IPv4Network)


async def test_a_second_scan_is_busy_and_the_quota_makes_it_partial(
    state: State, signer: Signer, sim_fleet: Any, silent: Silent
) -> None:
    fleet = await sim_fleet(proto=3)
    slow = neighbours(fleet, range(200, 204))
    for host in slow:
        await silent.listen(host, PORTS[0])
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire)
    addresses = [e["host"] for e in fleet.inventory] + slow
    first = signer.command(
        "discover",
        {
            "addresses": addresses,
            "ports": [PORTS[0]],
            "max_devices": 2,
            "identify_timeout_s": 1.0,
            "concurrency": 4,
        },
    )
    second = signer.command("discover", {"addresses": addresses, "ports": PORTS})
    dispatcher.handle(first)
    dispatcher.handle(second)
    await finished(dispatcher)
    assert [a["status"] for a in wire.acks(second["command_id"])] == ["busy"]
    final = wire.acks(first["command_id"])[-1]
    assert final["status"] == "partial"
    assert "quota of 2" in final["error"]
    assert final["result"]["found"] == 2
    assert len(wire.devices()) == 2


async def test_batches_never_acknowledged_end_partial(
    state: State, signer: Signer, sim_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discover, "ACK_WAIT_S", 0.5)
    fleet = await sim_fleet(proto=1)
    wire = Wire(ack=False)
    dispatcher = dispatcher_for(state, signer, wire)
    command = signer.command(
        "discover", {"addresses": [fleet.inventory[0]["host"]], "ports": PORTS}
    )
    dispatcher.handle(command)
    await finished(dispatcher)
    final = wire.acks(command["command_id"])[-1]
    assert final["status"] == "partial"
    assert final["result"]["unacked"] >= 1
    assert "never acknowledged" in final["error"]


async def test_the_deadline_stops_a_scan_partial(
    state: State, signer: Signer, silent: Silent
) -> None:
    hosts = [f"127.99.253.{n}" for n in range(1, 9)]
    for host in hosts:
        await silent.listen(host, 4028)
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire)
    command = signer.command(
        "discover",
        {
            "addresses": hosts,
            "ports": [4028],
            "deadline_s": 1,
            "concurrency": 2,
            "identify_timeout_s": 5,
        },
    )
    dispatcher.handle(command)
    await finished(dispatcher, timeout=10)
    final = wire.acks(command["command_id"])[-1]
    assert final["status"] == "partial" and "deadline" in final["error"]
    assert final["result"]["probed"] < final["result"]["total"]
    await until(lambda: silent.open == 0, timeout=5)  # the scan's sockets were closed


async def test_unacked_batches_are_resent_after_a_reconnect(
    tmp_path: Path,
    server: FakeServer,
    client_for: Any,
    sim_fleet: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = await sim_fleet(proto=1, antminer=1)
    monkeypatch.setenv("FLEETNODE_DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    command = server.signer.command(
        "discover",
        {"addresses": [e["host"] for e in fleet.inventory], "ports": PORTS},
    )

    async def drop_after_first_batch(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(command))
        await server.frames(ws, lambda f: f["type"] == "discovery_batch" and bool(f["devices"]))
        await ws.close()  # no batch_ack: the node must send it again

    async def ack_batches(ws: web.WebSocketResponse, hello: dict[str, Any]) -> None:
        async def ack(frame: dict[str, Any]) -> None:
            await ws.send_str(
                json.dumps(
                    {
                        "type": "batch_ack",
                        "command_id": frame["command_id"],
                        "batch_seq": frame["batch_seq"],
                        "accepted": len(frame["devices"]),
                        "dropped": 0,
                    }
                )
            )

        pending: list[dict[str, Any]] = []

        def take(frame: dict[str, Any]) -> bool:
            if frame["type"] == "discovery_batch":
                pending.append(frame)
            return frame["type"] == "ack" and frame.get("status") in ("ok", "partial")

        async for msg in ws:
            frame = json.loads(msg.data)
            server.received.append(frame)
            take(frame)
            while pending:
                await ack(pending.pop(0))
        return

    server.scripts += [drop_after_first_batch, ack_batches]
    client = client_for(tmp_path, server)
    task = await running(client)
    await until(
        lambda: any(
            f["type"] == "ack" and f.get("status") in ("ok", "partial") for f in server.received
        ),
        timeout=60,
    )
    await stop(client, task)
    batches = [f for f in server.received if f["type"] == "discovery_batch" and f["devices"]]
    first = batches[0]
    assert sum(1 for b in batches if b["batch_seq"] == first["batch_seq"]) >= 2  # resent
    assert [b for b in batches if b["batch_seq"] == first["batch_seq"]][-1] == first
    final = next(f for f in server.received if f["type"] == "ack" and f["status"] == "ok")
    assert final["result"]["unacked"] == 0
    found = {
        (d["host"], d["port"], d["driver"], d["serial"]) for b in batches for d in b["devices"]
    }
    assert found == expected(fleet)


@pytest.fixture
async def silent() -> Any:
    s = Silent()
    yield s
    await s.close()


async def test_the_servers_flat_payload_and_batch_max_are_honoured(
    state: State, signer: Signer, sim_fleet: Any
) -> None:
    fleet = await sim_fleet(proto=1, antminer=1)
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire)
    payload = {  # as discovery.node.discover_payload builds it
        "run": 7,
        "addresses": [e["host"] for e in fleet.inventory],
        "ports": PORTS,
        "node_local_subnet": False,
        "max_devices": 4096,
        "batch_max": 1,
    }
    command = signer.command("discover", payload)
    dispatcher.handle(command)
    await finished(dispatcher)
    assert [a["status"] for a in wire.acks(command["command_id"])] == ["accepted", "ok"]
    assert wire.devices() == expected(fleet)
    assert all(len(b["devices"]) <= 1 for b in wire.batches())


async def test_a_nested_scope_is_the_wrong_shape_and_is_rejected(
    state: State, signer: Signer, silent: Silent
) -> None:
    """One payload form only (the server's: scope fields at the top level); the early draft's
    nested ``scope`` is refused as a whole with a typed ``rejected`` ack, nothing dialled."""
    await silent.listen("127.99.251.1", 4028)
    wire = Wire()
    dispatcher = dispatcher_for(state, signer, wire)
    command = signer.command(
        "discover", {"scope": {"addresses": ["127.99.251.1"], "ports": [4028]}}
    )
    dispatcher.handle(command)
    await finished(dispatcher)
    acks = wire.acks(command["command_id"])
    assert [a["status"] for a in acks] == ["accepted", "rejected"], acks
    assert "not under 'scope'" in acks[-1]["error"]
    assert acks[-1]["result"] == {}
    assert wire.batches() == []
    assert silent.open == 0 and not silent.writers
    with pytest.raises(ScopeError, match="scope"):  # even beside valid top-level fields
        parse_job({"addresses": ["10.0.0.1"], "ports": [80], "scope": {"ports": [80]}}, allowed=[])


async def test_device_batches_go_one_at_a_time_in_seq_order(
    state: State, signer: Signer, sim_fleet: Any
) -> None:
    """The server may treat a seq at or below the highest it stored as a duplicate, so a
    device batch must never be overtaken: the next goes only after the previous is acked."""
    fleet = await sim_fleet(proto=2, antminer=2)
    wire = Wire(ack=False)
    dispatcher = dispatcher_for(state, signer, wire)
    command = signer.command(
        "discover",
        {
            "addresses": [e["host"] for e in fleet.inventory],
            "ports": PORTS,
            "batch_max": 1,
        },
    )
    dispatcher.handle(command)
    acked: list[int] = []
    in_flight_max = 0
    while not wire.acks(command["command_id"])[1:]:
        pending = [
            b["batch_seq"] for b in wire.batches() if b["devices"] and b["batch_seq"] not in acked
        ]
        in_flight_max = max(in_flight_max, len(set(pending)))
        if pending:
            await asyncio.sleep(0.05)  # a slow server
            seq = min(pending)
            acked.append(seq)
            dispatcher.batch_ack({"type": "batch_ack", "command_id": command["command_id"],
                                  "batch_seq": seq, "accepted": 1, "dropped": 0})  # fmt: skip
        else:
            await asyncio.sleep(0.01)
    await finished(dispatcher)
    seqs = [b["batch_seq"] for b in wire.batches()]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # no resend was needed
    assert in_flight_max == 1
    assert wire.devices() == expected(fleet)
    final = wire.acks(command["command_id"])[-1]
    assert final["status"] == "ok" and final["result"]["batches"] == len(expected(fleet))
    last = wire.batches()[-1]
    assert last["devices"] == [] and last["probed"] == last["total"]  # progress before the ack
    assert wire.frames.index(final) > wire.frames.index(last)
