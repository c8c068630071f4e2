"""Every fault kind, seen from the wire, set from Python and from the --control HTTP API."""

import asyncio
import json
import time

import aiohttp
import pytest

from miners.sim import FaultError
from miners.sim.control import parse_address, start_control
from tests.miners.conftest import antminer_web, rpc, rpc_raw

PW = "s3cretpw!"


async def _raw_http(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /api/v1/system HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_offline_refuses_every_port_until_cleared(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    fleet.faults.set(p["host"], "offline")
    fleet.faults.set(a["host"], "offline")
    for host, port in [(p["host"], p["ports"]["http"]), (p["host"], p["ports"]["https"]),
                       (a["host"], a["ports"]["http"]), (a["host"], a["ports"]["rpc"])]:  # fmt: skip
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)
    fleet.faults.clear(p["host"])
    fleet.faults.clear(a["host"], "offline")
    assert (await proto(p).call("GET", "/api/v1/system", auth=False))[0] == 200
    assert (await rpc(a, "version"))["VERSION"]


async def test_offline_resets_kept_alive_connections(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    assert (await client.call("GET", "/api/v1/system", auth=False))[0] == 200
    fleet.faults.set(fleet.inventory[0]["host"], "offline")
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.call("GET", "/api/v1/system", auth=False)


async def test_slow_delays_http_and_rpc(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    for entry in (p, a):
        fleet.faults.set(entry["host"], "slow", ms=300)
    started = time.monotonic()
    assert (await proto(p).call("GET", "/api/v1/system", auth=False))[0] == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert (await rpc(a, "summary"))["SUMMARY"]
    assert time.monotonic() - started >= 0.3


async def test_http500(sim_fleet, proto, http):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    fleet.faults.set(p["host"], "http500")
    fleet.faults.set(a["host"], "http500")
    assert (await proto(p).call("GET", "/api/v1/pairing/info", auth=False))[0] == 500
    assert (await antminer_web(http, a, "GET", "/cgi-bin/get_system_info.cgi"))[0] == 500
    assert (await rpc(a, "version"))["VERSION"]  # RPC has no HTTP status to break


async def test_garbage_on_http_and_rpc(sim_fleet):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    fleet.faults.set(p["host"], "garbage", bytes=32)
    fleet.faults.set(a["host"], "garbage")
    raw = await _raw_http(p["host"], p["ports"]["http"])
    assert len(raw) == 32 and not raw.startswith(b"HTTP/")
    raw = await rpc_raw(a["host"], a["ports"]["rpc"], b'{"command":"summary"}')
    assert len(raw) == 64
    with pytest.raises(ValueError):
        json.loads(raw.rstrip(b"\x00"))


async def test_wrong_password_rejects_the_right_one(sim_fleet, proto, http):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    client = proto(p)
    await client.login()
    fleet.faults.set(p["host"], "wrong_password")
    fleet.faults.set(a["host"], "wrong_password")
    assert (await client.call("GET", "/api/v1/mining"))[0] == 401  # sessions dropped too
    assert (await client.call("POST", "/api/v1/auth/login", json={"password": PW}))[0] == 401
    assert (await antminer_web(http, a, "GET", "/cgi-bin/get_miner_conf.cgi"))[0] == 401
    fleet.faults.clear(p["host"], "wrong_password")
    await client.login()


async def test_overheat_degrades_then_errors(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    client = proto(p)
    await client.login()
    normal = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    fleet.faults.set(p["host"], "overheat")
    hot = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert hot["status"] == "DegradedMining"
    assert hot["average_asic_temp_c"] > 85 > normal["average_asic_temp_c"]
    errors = (await client.call("GET", "/api/v1/errors"))[1]
    assert errors and {e["error_code"] for e in errors} == {"OverTemperature"}
    fleet.faults.set(p["host"], "overheat", severity="error")
    hot = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert hot["status"] == "Error" and hot["hashboards_mining"] == 0
    fleet.faults.set(a["host"], "overheat")
    stats = (await rpc(a, "stats"))["STATS"][1]
    assert stats["temp_max"] > 85


async def test_dead_board(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    client = proto(p)
    await client.login()
    before = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    fleet.faults.set(p["host"], "dead_board", board=1)
    after = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert after["status"] == "DegradedMining" and after["hashboards_mining"] == 2
    assert after["ideal_hashrate_ghs"] == pytest.approx(before["ideal_hashrate_ghs"] * 2 / 3)
    errors = (await client.call("GET", "/api/v1/errors"))[1]
    assert errors[0]["error_code"] == "HashboardNotHashing" and errors[0]["slot"] == 2
    fleet.faults.set(a["host"], "dead_board", board=0)
    stats = (await rpc(a, "stats"))["STATS"][1]
    assert stats["chain_acn1"] == 0 and stats["chain_rate1"] == "0.00" and stats["chain_acn2"]


async def test_dead_pool(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    p, a = fleet.inventory
    client = proto(p)
    await client.login()
    fleet.faults.set(p["host"], "dead_pool")
    fleet.faults.set(a["host"], "dead_pool")
    pools = (await client.call("GET", "/api/v1/pools"))[1]["pools"]
    assert {pool["status"] for pool in pools} == {"Dead"}
    mining = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert mining["average_hashrate_ghs"] == 0 or mining["status"] == "Error"
    assert (await client.call("GET", "/api/v1/telemetry"))[1]["miner"]["hashrate"]["value"] == 0
    assert {pool["Status"] for pool in (await rpc(a, "pools"))["POOLS"]} == {"Dead"}
    assert (await rpc(a, "summary"))["SUMMARY"][0]["GHS 5s"] == 0


def test_fault_validation():
    from miners.sim import FaultInjector, ManualClock

    injector = FaultInjector(lambda host: None, lambda miner, offline: None, ManualClock())
    with pytest.raises(FaultError, match="no simulated miner"):
        injector.set("127.0.0.9", "slow")
    with pytest.raises(FaultError, match="unknown fault"):
        injector.set("127.0.0.9", "meltdown")


async def test_control_api(sim_fleet, http, clock):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW, reboot_downtime=5, clock=clock)
    p, a = fleet.inventory
    runner = await start_control(fleet, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        async with http.get(f"{base}/miners") as r:
            listing = await r.json()
        assert [m["host"] for m in listing] == [p["host"], a["host"]]
        async with http.post(
            f"{base}/miners/{a['host']}/faults", json={"kind": "slow", "ms": 5}
        ) as r:
            assert r.status == 200 and (await r.json())["faults"]["slow"]["ms"] == 5
        async with http.post(
            f"{base}/miners/{a['host']}/faults", json={"kind": "slow", "ms": -1}
        ) as r:
            assert r.status == 400
        async with http.post(f"{base}/miners/{a['host']}/faults", json={"kind": "nope"}) as r:
            assert r.status == 400
        async with http.post(f"{base}/miners/127.0.0.99/faults", json={"kind": "slow"}) as r:
            assert r.status == 404
        async with http.delete(f"{base}/miners/{a['host']}/faults/slow") as r:
            assert (await r.json())["faults"] == {}
        async with http.post(f"{base}/faults", json={"kind": "dead_pool"}) as r:
            assert (await r.json())["count"] == 2
        async with http.get(f"{base}/miners/{p['host']}") as r:
            assert "dead_pool" in (await r.json())["faults"]
        async with http.delete(f"{base}/faults") as r:
            assert r.status == 200
        for entry in (p, a):
            async with http.post(
                f"{base}/miners/{entry['host']}/reboot", json={"downtime": 20}
            ) as r:
                assert r.status == 202
        with pytest.raises(ConnectionRefusedError):  # a rebooting Antminer refuses
            await asyncio.open_connection(a["host"], a["ports"]["http"])
        async with http.get(  # a rebooting ProtoOS rig still answers its identity
            f"http://{p['host']}:{p['ports']['http']}/api/v1/pairing/info"
        ) as r:
            assert r.status == 200
        async with http.get(f"{base}/miners/{p['host']}") as r:
            assert (await r.json())["rebooting"] is True
        clock.advance(20)
        async with http.get(f"{base}/miners/{p['host']}") as r:
            assert (await r.json())["uptime_s"] == 0
        _, writer = await asyncio.open_connection(a["host"], a["ports"]["http"])
        writer.close()
    finally:
        await runner.cleanup()


def test_control_binds_loopback_only():
    assert parse_address("127.0.0.1:8099") == ("127.0.0.1", 8099)
    for bad in ("0.0.0.0:8099", "10.0.0.1:80", "127.0.0.1", "127.0.0.1:99999"):
        with pytest.raises(ValueError):
            parse_address(bad)
