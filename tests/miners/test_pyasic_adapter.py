"""Our pyasic-rs adapter behind the driver interface, driven through the CLI in a subprocess
(pyasic-rs never loads into pytest; outputs are judged, exit statuses are not, because the
library has aborted interpreters at exit). Root only: pyasic-rs probes fixed ports."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PW = "s3cretpw!"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="pyasic-rs only probes the real ports 80/443/4028 (needs root)"
)


async def cli(*args: str, timeout: float = 60) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miners", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return out.decode(), err.decode()


async def probe(*args: str) -> dict:
    out, err = await cli("probe", *args, "--json")
    assert out.strip(), err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_importing_miners_does_not_load_pyasic():
    assert "pyasic_rs" not in sys.modules


@pytest.mark.slow
async def test_adapter_identifies_and_reads_both_kinds(sim_fleet):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    for entry in fleet.inventory:
        result = await probe(entry["host"], "--driver", "pyasic", "--password", PW)
        assert result["driver"] == "pyasic" and result["error"] is None
        assert (result["serial"], result["mac"]) == (entry["serial"], entry["mac"])
        assert "reboot" in result["capabilities"] and "pools" in result["capabilities"]
        assert result["hashrate_ths"] is not None and result["status"]["state"]
        assert [p["url"] for p in result["pools"]] == [
            p.url for p in fleet.miner(entry["host"]).pools
        ]
    antminer = await probe(fleet.inventory[1]["host"], "--driver", "pyasic", "--password", PW)
    assert "power_target_watts" not in antminer["capabilities"]


@pytest.mark.slow
async def test_own_drivers_win_over_pyasic(sim_fleet):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto, antminer = fleet.inventory
    assert (await probe(proto["host"], "--password", PW))["driver"] == "protoos"
    assert (await probe(f"{antminer['host']}:80", "--password", PW))["driver"] == "antminer"


@pytest.mark.slow
async def test_empty_snapshot_becomes_auth_failed(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]
    result = await probe(host, "--driver", "pyasic", "--password", "wrong-password")
    assert result["driver"] == "pyasic"
    assert result["error"]["kind"] == "auth_failed" and result["status"] is None


@pytest.mark.slow
async def test_action_through_the_adapter(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]
    out, err = await cli(
        "action", host, "blink", "on", "--driver", "pyasic", "--password", PW, "--json"
    )
    assert json.loads(out)["ok"] is True, err
    assert fleet.miner(host).locate_on(fleet.clock.now())


@pytest.mark.slow
async def test_refused_port_on_a_miner_is_not_claimed(sim_fleet):
    """pyasic-rs finds the rig by host alone; a port that refuses is still nothing there."""
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]  # ProtoOS: 80 and 443 listen, 4028 refuses
    out, err = await cli("probe", f"{host}:4028", "--password", PW, "--json")
    assert out == "" and "nothing answered like a miner" in err


@pytest.mark.slow
async def test_offline_rig_is_not_identified_and_deadline_holds(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]
    fleet.faults.set(host, "offline")
    out, err = await cli("probe", host, "--driver", "pyasic", "--json")
    assert out == "" and "nothing answered like a miner" in err
    fleet.faults.clear(host)
    fleet.faults.set(host, "slow", ms=30_000)
    started = time.monotonic()
    out, err = await cli("probe", host, "--driver", "pyasic", "--timeout", "1", "--json")
    assert time.monotonic() - started < 10
    assert out == "" and "nothing answered like a miner" in err
