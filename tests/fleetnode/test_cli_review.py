"""The agent CLI as docs/fleet-node.md states it (issue 8 review): ``enroll`` without ``--code``
exits 2, on a revoked registration exits 3; ``status`` after a revoke says "revoked"; the
poller sends a miner's identity with its first report. The CLI runs as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fleetnode import protocol
from fleetnode.assignment import parse_assignment
from fleetnode.poller import Poller
from fleetnode.state import NodeConfig, State
from miners import Registry, default_drivers
from tests.fleetnode.conftest import assignment_for
from tests.fleetnode.test_enroll import Gateway, gateway

__all__ = ["gateway"]

ROOT = Path(__file__).resolve().parents[2]


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetnode",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_enroll_without_a_code_is_bad_usage(tmp_path: Path, gateway: Gateway) -> None:
    code, _out, err = await _cli(
        "--state-dir", str(tmp_path / "s"), "enroll", "--server", gateway.url
    )
    assert code == 2, err
    assert "--code is required" in err
    assert gateway.registrations == []


async def test_a_revoked_registration_exits_3_and_status_says_revoked(
    tmp_path: Path, gateway: Gateway
) -> None:
    state_dir = str(tmp_path / "s")
    gateway.credential_answers = [(403, {"detail": "This node is revoked."})]
    code, out, err = await _cli(
        "enroll", "--state-dir", state_dir, "--server", gateway.url, "--code", "rwe_x"
    )
    assert code == 3, (out, err)
    assert "revoked" in err
    code, out, _err = await _cli("status", "--state-dir", state_dir)
    assert code == 0 and "— revoked" in out and "enrolled" not in out.split("\n")[0]
    code, out, _err = await _cli("status", "--state-dir", state_dir, "--json")
    report = json.loads(out)
    assert (report["revoked"], report["enrolled"], report["awaiting_confirmation"]) == (
        True,
        False,
        False,
    )
    # enrolling the same state dir again can't help: 3 at once, nothing sent
    code, _out, err = await _cli(
        "enroll", "--state-dir", state_dir, "--server", gateway.url, "--code", "rwe_y"
    )
    assert code == 3 and len(gateway.registrations) == 1, err


async def test_status_after_the_stream_closed_4403_says_revoked(tmp_path: Path) -> None:
    state = State(tmp_path / "s")
    key = state.identity(create=True)
    state.set_config(
        NodeConfig("http://127.0.0.1:9", 5, "gw", protocol.fingerprint(protocol.public_bytes(key)))
    )
    state.set_api_key("rwk_test")
    state.set_status({"connected": False, "last_close": {"code": 4403, "at": time.time()}})
    code, out, _err = await _cli("status", "--state-dir", str(state.dir))
    assert code == 0
    assert out.startswith("Node 5 'gw' — revoked")


async def test_the_first_poll_of_a_miner_carries_its_identity(rigs: Any) -> None:
    data_key = os.urandom(32)
    registry = Registry(default_drivers(include_pyasic=False))
    payload = assignment_for(rigs.inventory, data_key)
    miners = parse_assignment(payload, {d.name for d in registry.drivers}).miners
    poller = Poller(registry)
    first = await poller.cycle(miners, node_key=data_key, node_id=41)
    assert [o["error"] for o in first] == [None, None]
    for outcome in first:
        identity: dict[str, str] = outcome["identity"]
        assert identity["model"] and (identity.get("mac") or identity.get("serial"))
    second = await poller.cycle(miners, node_key=data_key, node_id=41)
    assert all("identity" not in o for o in second)  # once per miner, not every poll
