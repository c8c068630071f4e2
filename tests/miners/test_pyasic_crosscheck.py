"""Independent client cross-check: pyasic-rs, which knows real firmware, must take the
simulators for real miners on their real ports and read the same hashrate, power and pools
the simulator reports (and our drivers read).

pyasic-rs runs in a subprocess (it has aborted interpreters at exit), judged by the JSON it
prints, never by its exit status; this pytest process never imports it. It probes fixed
ports (80, 443, 4028), so the fleet must sit on the real ports: root only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from miners import AntminerDriver, Credentials, HttpClient, ProtoOSDriver

ROOT = Path(__file__).resolve().parents[2]
PW = "s3cretpw!"

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="pyasic-rs only probes the real ports 80/443/4028 (needs root)"
    ),
    pytest.mark.slow,  # runs pyasic-rs in a subprocess
]

# Plain pyasic-rs, none of our code: identify each host, then one full get_data().
SCRIPT = """
import asyncio, json, sys
from pyasic_rs import MinerFactory

async def one(host, user, password):
    factory = MinerFactory().with_firmware_discovery_auth("AntMiner Stock", user, password)
    miner = await asyncio.wait_for(factory.get_miner(host), 20)
    if miner is None:
        return {"host": host, "identified": False}
    miner.set_auth(user, password)
    data = await asyncio.wait_for(miner.get_data(), 20)
    return {"host": host, "identified": True, "data": data.model_dump()}

async def main():
    password = sys.argv[1]
    results = [await one(host, "root", password) for host in sys.argv[2:]]
    print(json.dumps(results, default=str), flush=True)

asyncio.run(main())
"""


async def pyasic_get_data(password: str, *hosts: str) -> dict[str, dict]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, password, *hosts,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    lines = out.decode().strip().splitlines()
    assert lines, f"pyasic-rs printed nothing (exit {proc.returncode}): {err.decode()[-2000:]}"
    return {r["host"]: r for r in json.loads(lines[-1])}


def ths(hashrate: dict | None) -> float | None:
    if hashrate is None:
        return None
    scale = {"TH/s": 1.0, "GH/s": 1e-3, "PH/s": 1e3}[hashrate["unit"]]
    return hashrate["value"] * scale


async def our_status(entry: dict) -> object:
    http = HttpClient()
    try:
        creds = Credentials(password=PW)
        if entry["kind"] == "protoos":
            driver = ProtoOSDriver(http)
            info = await driver.identify(entry["host"], entry["ports"]["https"])
        else:
            driver = AntminerDriver(http)
            info = await driver.identify(entry["host"], entry["ports"]["rpc"], credentials=creds)
        assert info is not None
        return await driver.connect(info, creds).status()
    finally:
        await http.close()


async def test_pyasic_identifies_and_reads_both_kinds_like_the_simulator(sim_fleet, clock):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW, clock=clock)
    proto, antminer = fleet.inventory
    clock.advance(60)  # well past boot; time then stands still, so every client reads one instant
    results = await pyasic_get_data(PW, proto["host"], antminer["host"])
    now = clock.now()

    for entry in (proto, antminer):
        result = results[entry["host"]]
        assert result["identified"], f"pyasic-rs did not identify the {entry['kind']} simulator"
        data = result["data"]
        miner = fleet.miner(entry["host"])
        info = data["device_info"]
        assert (
            (info["make"] + info["model"])
            .replace(" ", "")
            .endswith(entry["model"].replace("Antminer", "").replace(" ", ""))
        )
        assert data["serial_number"] == entry["serial"] and data["mac"] == entry["mac"]

        nominal = miner.rate_ths()
        assert ths(data["hashrate"]) == pytest.approx(nominal, rel=0.1)
        assert ths(data["expected_hashrate"]) == pytest.approx(nominal, rel=0.01)
        assert len(data["hashboards"]) == miner.model.boards

        sim_pools = [(p.url, p.user) for p in miner.pools]
        lib_pools = [(p["url"], p["user"]) for g in data["pools"] for p in g["pools"]]
        assert lib_pools == sim_pools
        assert [p["active"] for g in data["pools"] for p in g["pools"]] == [True, False]

        ours = await our_status(entry)
        assert ours.hashrate_ths == pytest.approx(ths(data["hashrate"]), rel=0.1)
        assert [(p.url, p.user) for p in ours.pools] == sim_pools

    proto_data = results[proto["host"]]["data"]
    sim_power = fleet.miner(proto["host"]).power_w(now)
    assert proto_data["wattage"] == pytest.approx(sim_power, rel=0.1)
    # stock Antminer reports the measured draw as `chain_power` in `stats`; both clients read it
    antminer_power = fleet.miner(antminer["host"]).power_w(now)
    assert results[antminer["host"]]["data"]["wattage"] == pytest.approx(antminer_power, rel=0.1)
    assert (await our_status(antminer)).power_w == pytest.approx(antminer_power, rel=0.1)
