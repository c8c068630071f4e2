"""Stopping a web replica drains it: the container's ``web`` role traps SIGTERM, sends
``goaway`` to the fleet nodes connected to that replica, then stops daphne (close 1012)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from django.conf import settings as django_settings

from fleetnode import protocol
from tests.conftest import make_world
from tests.fleet.nodes.live import ROOT, free_port, test_database_url
from tests.fleet.nodes.support import enroll, session_token
from tests.fleet.nodes.wsclient import close_code, open_stream, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


def _start_web(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        PORT=str(port),
        DATABASE_URL=test_database_url(),
        FLEET_TESTING="1",
        SECRET_KEY=django_settings.SECRET_KEY,
        FLEET_MASTER_KEY=base64.urlsafe_b64encode(django_settings.FLEET_MASTER_KEY).decode(),
        DATA_DIR=str(tmp_path),
        DAPHNE_ARGS="-b 127.0.0.1",
        DRAIN_RECONNECT_MS="3000",
        DRAIN_GRACE_SECONDS="1",
    )
    log = tmp_path / "web.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["sh", str(ROOT / "docker" / "entrypoint.sh"), "web"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return proc, base, log
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.3)


def test_sigterm_to_the_web_role_drains_its_nodes_first(tmp_path: Path) -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: the drain reaches the replica through the channel layer")
    node = enroll(make_world("alpha").users["admin"])
    token = session_token(node)
    proc, base, log = _start_web(tmp_path)
    try:

        async def scenario() -> tuple[dict[str, Any], int | None]:
            async with aiohttp.ClientSession() as session:
                ws = await open_stream(session, base, token)
                await ws.send_str(json.dumps(node.hello()))
                await until(ws, "welcome")
                await asyncio.sleep(0.5)  # the stream is recorded against this replica
                proc.send_signal(signal.SIGTERM)
                goaway = await until(ws, "goaway", timeout=30)
                return goaway, await close_code(ws, timeout=30)

        goaway, code = asyncio.run(scenario())
        assert 300 <= goaway["reconnect_after_ms"] <= 3000
        assert code == protocol.CLOSE_DRAINING
        assert proc.wait(timeout=30) is not None
        assert "Sent goaway to 1 connected node(s)." in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
