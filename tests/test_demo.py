"""`make run` with the demo fleet, as a newcomer runs it: simulators start (non-root ports), get
paired into the demo org, the embedded scheduler polls them, and SIGTERM to make stops the
server and every simulator process (nothing left in their process groups).

A small fleet (DEMO_PROTO/DEMO_ANTMINER) in a temporary DATA_DIR on a free port; once with the
simulators on their own loopback addresses, once in port-per-miner mode on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
PROTO, ANTMINER = 16, 8  # 24 miners: two of them get a fault (offline, overheat)
NOT_REMADE = ["-o", "static/vendor/.stamp", "-o", "collectstatic"]


def gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - http://127.0.0.1
        return json.loads(reply.read() or b"null")


def wait_for(what: str, check: Any, timeout: float, proc: subprocess.Popen[str], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited ({proc.returncode}):\n{log.read_text()}")
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("single", ["auto", "1"], ids=["own-addresses", "port-per-miner"])
def test_make_run_serves_a_live_demo_fleet_and_stops_it(tmp_path: Path, single: str) -> None:
    data, port, log = tmp_path / "data", free_port(), tmp_path / "make-run.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not key.startswith(("PYTEST", "MAKE"))
    } | {
        "DATA_DIR": str(data),
        "PORT": str(port),
        "DEMO_PROTO": str(PROTO),
        "DEMO_ANTMINER": str(ANTMINER),
        "DEMO_SIM_BASE": f"127.79.{random.randrange(256)}.1",
        # >= 1024 (no root), and below the ephemeral ports that loopback clients hold
        "DEMO_SIM_PORT_OFFSET": str(random.randrange(20000, 28000, 10)),
        "DEMO_SINGLE_ADDRESS": single,
    }
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", *NOT_REMADE, "run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # make's group: make and the launcher
        )
    groups = [proc.pid]
    try:
        wait_for("the demo sign-in", lambda: "Demo sign-in" in log.read_text(), 120, proc, log)
        banner_at = time.monotonic() - started
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        banner = f"Demo fleet: {PROTO + ANTMINER} simulated miners (stop with Ctrl-C)"
        demo_dir = data / "demo"
        assert banner in lines, (lines, *(p.read_text()[-3000:] for p in demo_dir.glob("*.log")))
        first = lines.index(banner)
        assert lines[first + 1].startswith(f"Rigwarden on http://127.0.0.1:{port}/")
        assert lines[first + 2].startswith("Demo sign-in: owner@demo.rigwarden.local")
        sim_pid = int((data / "demo" / "sim.pid").read_text())
        server_pid = int((data / "demo" / "server.pid").read_text())
        groups += [sim_pid, server_pid]

        base = f"http://127.0.0.1:{port}"
        wait_for("the server", lambda: get(f"{base}/healthz") is not None, 60, proc, log)
        token = subprocess.run(
            [sys.executable, "manage.py", "create_api_token", "--email",
             "owner@demo.rigwarden.local", "--org", "demo"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout.splitlines()[-1]  # fmt: skip

        def live() -> list[dict[str, Any]] | None:
            miners = get(f"{base}/api/v1/miners/?page_size=500", token)["results"]
            polled = [m for m in miners if m["latest"]]
            return miners if len(polled) >= PROTO + ANTMINER - 1 else None  # one is offline

        miners = wait_for("polled miners", live, 60, proc, log)
        live_at = time.monotonic() - started
        assert len(miners) == PROTO + ANTMINER
        assert len({m["site"] for m in miners}) == 2  # north and south
        unpolled = [m for m in miners if not m["latest"]]
        assert len(unpolled) == 1 and unpolled[0]["driver"] == "antminer"  # the offline one
        assert any(m["latest"] and m["latest"]["state"] == "degraded" for m in miners)  # overheat
        assert all("simulated" in m["tags"] for m in miners)
        if single == "1":
            assert {m["host"] for m in miners} == {"127.0.0.1"}
            assert len({m["port"] for m in miners}) == len(miners)
        print(f"banner after {banner_at:.1f} s, live fleet after {live_at:.1f} s")

        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        for pgid in groups:  # make + launcher, the simulators, the server: all gone
            wait_for_gone = time.monotonic() + 5
            while not gone(pgid) and time.monotonic() < wait_for_gone:
                time.sleep(0.1)
            assert gone(pgid), f"process group {pgid} outlived make run"
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        for pgid in groups:
            if not gone(pgid):
                os.killpg(pgid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
