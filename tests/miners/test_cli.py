"""`python -m miners probe|action` as operators run it: a subprocess, judged by exit code,
stdout and stderr. pyasic-rs is left out here (`--no-pyasic`) so exit codes can be asserted;
the default probe path with pyasic-rs is covered in test_pyasic_crosscheck.py."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

from miners.cli import CliError, parse_target

ROOT = Path(__file__).resolve().parents[2]
PW = "s3cretpw!"


async def cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miners", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", None)),
        ("10.0.0.1:4028", ("10.0.0.1", 4028)),
        ("[fd00::1]:443", ("fd00::1", 443)),
        ("fd00::1", ("fd00::1", None)),
        ("rig-7.local:8080", ("rig-7.local", 8080)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.1:0", "10.0.0.1:99999", "host:abc", "[fd00::1", ":80", "a b"]
)
def test_parse_target_rejects(text):
    with pytest.raises(CliError):
        parse_target(text)


@pytest.mark.slow
async def test_probe_json_for_both_kinds(sim_fleet):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto, antminer = fleet.inventory
    targets = {
        "protoos": f"{proto['host']}:{proto['ports']['https']}",
        "antminer": f"{antminer['host']}:{antminer['ports']['rpc']}",
    }
    for (driver, target), entry in zip(targets.items(), fleet.inventory, strict=True):
        code, out, err = await cli("probe", target, "--password", PW, "--json", "--no-pyasic")
        assert code == 0, err
        result = json.loads(out)
        assert result["driver"] == driver
        assert (result["serial"], result["mac"]) == (entry["serial"], entry["mac"])
        assert entry["model"].replace(" ", "") in (result["make"] + result["model"]).replace(
            " ", ""
        )
        assert result["firmware"] and result["hashrate_ths"] is not None
        assert result["pools"] and set(result["pools"][0]) >= {"url", "user", "status"}
        assert "power_w" in result and result["error"] is None


@pytest.mark.slow
async def test_probe_table_and_all_ports(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    code, out, _ = await cli("probe", fleet.inventory[0]["host"], "--password", PW, "--no-pyasic")
    assert code == 0
    assert "protoos" in out and fleet.inventory[0]["serial"] in out and "pool 0" in out


@pytest.mark.slow
async def test_probe_with_wrong_password_still_identifies(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    target = f"{fleet.inventory[0]['host']}:{fleet.inventory[0]['ports']['http']}"
    code, out, _ = await cli("probe", target, "--password", "wrong-pass", "--json", "--no-pyasic")
    assert code == 0
    assert json.loads(out)["error"]["kind"] == "auth_failed"


@pytest.mark.slow
async def test_probe_without_the_web_password_still_reads_the_antminer_rpc(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    code, out, _ = await cli(
        "probe", entry["host"], "--password", "wrong-pass", "--json", "--no-pyasic"
    )
    assert code == 0
    result = json.loads(out)
    assert result["error"]["kind"] == "auth_failed"
    assert result["hashrate_ths"] > 0 and result["power_w"] > 0
    assert [p["url"] for p in result["pools"]] == [p.url for p in fleet.miner(entry["host"]).pools]


@pytest.mark.slow
async def test_probe_refused_port_exits_2():
    code, out, err = await cli("probe", f"127.0.0.1:{refused_port()}", "--json", "--no-pyasic")
    assert code == 2 and out == ""
    assert "nothing answered like a miner" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["probe"],
        ["probe", "10.0.0.1:notaport"],
        ["frobnicate", "10.0.0.1"],
        ["action", "10.0.0.1", "explode"],
        ["action", "10.0.0.1", "pools", "missing-user"],
        ["action", "10.0.0.1", "power-target", "lots"],
        ["probe", "10.0.0.1", "--timeout", "soon"],
        ["probe", "10.0.0.1", "--driver", "nope"],
    ],
)
@pytest.mark.slow
async def test_bad_arguments_exit_2_without_traceback(args):
    code, _, err = await cli(*args)
    assert code == 2 and err and "Traceback" not in err


@pytest.mark.slow
async def test_actions(sim_fleet):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto, antminer = fleet.inventory
    p_target = f"{proto['host']}:{proto['ports']['https']}"
    a_target = f"{antminer['host']}:{antminer['ports']['rpc']}"
    auth = ("--password", PW, "--no-pyasic")
    assert (await cli("action", p_target, "blink", "on", *auth))[0] == 0
    code, out, _ = await cli(
        "action", p_target, "pools", "stratum+tcp://a.example:3333,alice.1,x", *auth, "--json"
    )
    assert code == 0 and json.loads(out)["ok"] is True
    assert fleet.miner(proto["host"]).pools[0].user == "alice.1"
    assert (await cli("action", p_target, "power-target", "3000", *auth))[0] == 0
    assert fleet.miner(proto["host"]).power_target_w == 3000
    code, out, _ = await cli("action", a_target, "logs", "--lines", "3", *auth)
    assert code == 0 and 1 <= len(out.splitlines()) <= 3
    assert (await cli("action", a_target, "power-target", "efficiency", *auth))[0] == 0
    assert fleet.miner(antminer["host"]).work_mode == 2
    code, _, err = await cli("action", a_target, "power-target", "2500", *auth)
    assert code == 1 and "unsupported" in err and "Traceback" not in err
    code, _, err = await cli("action", p_target, "stop", "--password", "wrong-pass", "--no-pyasic")
    assert code == 1 and "auth_failed" in err


@pytest.mark.slow
async def test_probe_shows_the_hostname_and_a_rebooting_rig(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW, flavour="field")
    entry = fleet.inventory[0]
    target = f"{entry['host']}:{entry['ports']['https']}"
    code, out, err = await cli("probe", target, "--password", PW, "--json", "--no-pyasic")
    assert code == 0, err
    result = json.loads(out)
    assert result["hostname"] == f"proto-{entry['serial'][-6:].lower()}"
    assert result["status"]["hostname"] == result["hostname"] and len(result["status"]["psus"]) == 2
    fleet.reboot(fleet.miner(entry["host"]), downtime=60)
    code, out, err = await cli("probe", target, "--password", PW, "--json", "--no-pyasic")
    assert code == 0, err
    result = json.loads(out)
    assert (result["serial"], result["state"]) == (entry["serial"], "rebooting")
    assert result["error"]["kind"] == "rebooting"
    code, out, _ = await cli("probe", target, "--password", PW, "--no-pyasic")
    assert code == 0 and "rebooting" in out


@pytest.mark.slow
async def test_pools_action_with_a_stratum_v2_authority_key(sim_fleet):
    fleet = await sim_fleet(proto=1, password=PW)
    entry = fleet.inventory[0]
    target = f"{entry['host']}:{entry['ports']['http']}"
    key = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
    args = ("--password", PW, "--no-pyasic")
    code, _, err = await cli(
        "action", target, "pools", "stratum2+tcp://sv2.example:3336,acct.w1",
        "stratum+tcp://v1.example:3333,acct.w1", "--authority-key", key, *args,
    )  # fmt: skip
    assert code == 0, err
    assert [p.authority_pubkey for p in fleet.miner(entry["host"]).pools] == [key, ""]
    code, _, err = await cli(
        "action", target, "pools", "stratum2+tcp://sv2.example:3336,acct.w1", *args
    )
    assert code == 1 and "v2_authority_pubkey" in err and "Traceback" not in err
    code, _, err = await cli(
        "action", target, "pools", "stratum+tcp://v1.example:3333,w", "--authority-key", key, *args
    )
    assert code == 2 and "authority-key" in err
