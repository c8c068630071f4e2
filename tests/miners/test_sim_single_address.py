"""Port-per-miner mode (`--single-address`): every miner on 127.0.0.1, each with its own ports,
named by its usual loopback address for the control API and the fault injector."""

from __future__ import annotations

import asyncio
import errno
import random

import aiohttp
import pytest

from miners import AntminerDriver, Credentials, HttpClient, ProtoOSDriver
from miners.sim import FleetSpec, SimFleet
from miners.sim.cli import build_parser, spec_from_args
from miners.sim.control import start_control
from miners.sim.single import GROUP, layout_problem, shift
from miners.sim.spec import SpecError

PW = "s3cretpw!"


async def single_fleet(**spec: object) -> SimFleet:
    """A fleet on 127.0.0.1 at a random port offset (another session may hold one)."""
    for _attempt in range(8):
        fleet = SimFleet(
            FleetSpec(
                base="127.77.0.1",
                single_address="127.0.0.1",
                port_offset=random.randrange(21000, 28000),  # below the ephemeral ports
                stats_delay=0.0,
                **spec,  # type: ignore[arg-type]
            )
        )
        try:
            await fleet.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return fleet
    raise RuntimeError("no free port block on 127.0.0.1")


def test_layout_keeps_every_port_apart_and_the_firmware_spacing() -> None:
    ports: set[int] = set()
    for position in range(3 * GROUP + 5):
        s = shift(position, 1000)
        block = {80 + s, 443 + s, 4028 + s}
        assert not block & ports, position
        ports |= block
    assert shift(1, 0) - shift(0, 0) == 1
    assert layout_problem(300, 10000) is None
    assert "65535" in (layout_problem(20000, 10000) or "")


def test_spec_and_flags() -> None:
    args = build_parser().parse_args(["--proto", "2", "--single-address", "--port-offset", "9000"])
    spec = spec_from_args(args)
    assert (spec.single_address, spec.port_offset) == ("127.0.0.1", 9000)
    with pytest.raises(SpecError, match="127.0.0.0/8"):
        FleetSpec(proto=1, single_address="10.0.0.1").validate()
    with pytest.raises(SpecError, match="ports up to"):
        FleetSpec(proto=9000, single_address="127.0.0.1", port_offset=20000).validate()


async def test_one_address_serves_every_miner_through_the_drivers() -> None:
    fleet = await single_fleet(proto=2, antminer=2, password=PW)
    http = HttpClient()
    try:
        inventory = fleet.inventory
        assert {e["host"] for e in inventory} == {"127.0.0.1"}
        assert [e["id"] for e in inventory] == [f"127.77.0.{i}" for i in range(1, 5)]
        ports = [p for e in inventory for p in e["ports"].values()]
        assert len(ports) == len(set(ports))
        proto_driver, antminer_driver = ProtoOSDriver(http), AntminerDriver(http)
        for entry in inventory:
            creds = Credentials(password=PW)
            if entry["kind"] == "protoos":
                info = await proto_driver.identify(
                    "127.0.0.1", entry["ports"]["https"], credentials=creds
                )
                device = proto_driver.connect(info, creds, timeout=5) if info else None
            else:  # identified on the web port: the RPC port follows the firmware's spacing
                info = await antminer_driver.identify(
                    "127.0.0.1", entry["ports"]["http"], credentials=creds
                )
                device = antminer_driver.connect(info, creds, timeout=5) if info else None
                assert info is not None and info.ports["rpc"] == entry["ports"]["rpc"]
            assert info is not None and device is not None
            assert (info.serial, info.mac) == (entry["serial"], entry["mac"])
            try:
                assert (await device.status()).hashrate_ths
            finally:
                await device.close()

        first, second = inventory[0], inventory[1]
        fleet.faults.set(first["id"], "offline")
        for port in first["ports"].values():  # that miner's ports only
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", port)
        assert await proto_driver.identify("127.0.0.1", second["ports"]["http"], timeout=2)
        fleet.faults.clear(first["id"])
        assert await proto_driver.identify("127.0.0.1", first["ports"]["http"], timeout=2)
    finally:
        await http.close()
        await fleet.stop()


async def test_control_api_knows_miners_by_id() -> None:
    fleet = await single_fleet(proto=1, antminer=1, password=PW)
    runner = await start_control(fleet, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/miners") as resp:
                listed = await resp.json()
            assert [(e["id"], e["host"]) for e in listed] == [
                ("127.77.0.1", "127.0.0.1"),
                ("127.77.0.2", "127.0.0.1"),
            ]
            async with session.post("/miners/127.77.0.2/faults", json={"kind": "slow"}) as resp:
                assert resp.status == 200
            async with session.post("/faults", json={"kind": "overheat"}) as resp:
                assert (await resp.json())["count"] == 2
            assert set(fleet.faults.get("127.77.0.2")) == {"slow", "overheat"}
            async with session.delete("/faults") as resp:
                assert resp.status == 200
            assert not fleet.faults.get("127.77.0.1")
    finally:
        await runner.cleanup()
        await fleet.stop()
