"""Where the node and its miners live in the end-to-end tests.

``LoopbackSite``: simulated miners on 127.x in this process (a ``ThreadedFleet``), the agent a
plain subprocess. ``NamespaceSite``: the real topology — a network namespace this test creates,
joined to the host by a veth pair; the miners listen on the namespace's own loopback
(127.254.n.x), so the server on the host can't dial them, while the agent inside can
dial both the miners and the server (over the veth).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.fleet.nodes.live import ROOT
from tests.miners.conftest import PORT_OFFSET


class LoopbackSite:
    name = "loopback"
    server_host = "127.0.0.1"
    prefix: list[str] = []
    enroll_args: list[str] = []

    def __init__(self, tmp_path: Path) -> None:
        self.fleet = ThreadedFleet(
            proto=1,
            antminer=1,
            password=PASSWORD,
            port_offset=PORT_OFFSET,
            stats_delay=0.0,
            reboot_downtime=5.0,
            seed=5,
        )
        self.inventory: list[dict[str, Any]] = self.fleet.inventory

    def rebooting(self, host: str) -> bool:
        return bool(self.fleet.fleet.miner(host).rebooting(self.fleet.fleet.clock.now()))

    def close(self) -> None:
        self.fleet.stop()


def namespace_unavailable() -> str:
    """Why the namespace topology can't run here ('' when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"rwprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class NamespaceSite:
    name = "netns"

    def __init__(self, tmp_path: Path) -> None:
        n = 1 + os.getpid() % 250
        self.ns = f"rwnode{os.getpid()}"
        self.server_host = f"10.231.{n}.1"
        self.node_addr = f"10.231.{n}.2"
        # the miners' "LAN": the namespace's own loopback (the simulator serves 127/8 only), in
        # a block no other test uses; the same addresses on the host lead nowhere
        self.lan_base = f"127.254.{n}.1"
        self.prefix = ["ip", "netns", "exec", self.ns]
        self.enroll_args = ["--allow-http"]  # plain http to a non-loopback test server
        host_if, ns_if = f"rwv{n}h", f"rwv{n}n"
        self.sim: subprocess.Popen[bytes] | None = None
        _ip("netns", "add", self.ns)
        try:
            _ip("-n", self.ns, "link", "set", "lo", "up")
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _ip("link", "set", ns_if, "netns", self.ns)
            _ip("addr", "add", f"{self.server_host}/30", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.node_addr}/30", "dev", ns_if)
            _ip("-n", self.ns, "link", "set", ns_if, "up")
            self.inventory = self._start_sims(tmp_path)
        except BaseException:
            self.close()
            raise

    def _start_sims(self, tmp_path: Path) -> list[dict[str, Any]]:
        inventory = tmp_path / "inventory.json"
        log = (tmp_path / "sim.log").open("w")
        self.sim = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "miners.sim",
                "--proto",
                "1",
                "--antminer",
                "1",
                "--base",
                self.lan_base,
                "--password",
                PASSWORD,
                "--seed",
                "5",
                "--inventory",
                str(inventory),
                "--control",
                "127.0.0.1:8099",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not inventory.exists() or not inventory.read_text().strip():
            if self.sim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the simulator in the namespace did not start: "
                    + (tmp_path / "sim.log").read_text()[-2000:]
                )
            time.sleep(0.2)
        return list(json.loads(inventory.read_text()))

    def control(self, path: str) -> Any:
        """The simulator's control API, which listens on the namespace's loopback."""
        code = (
            "import json,sys,urllib.request;"
            f"print(urllib.request.urlopen('http://127.0.0.1:8099{path}', timeout=5).read().decode())"
        )
        out = subprocess.run(
            [*self.prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
        return json.loads(out.stdout) if out.returncode == 0 else None

    def rebooting(self, host: str) -> bool:
        for entry in self.control("/miners") or []:
            if entry.get("host") == host:
                return bool(entry.get("down"))
        return False

    def server_reaches(self, host: str, port: int) -> bool:
        """Whether the host side (where the server runs) can open host:port."""
        try:
            with socket.create_connection((host, port), timeout=2):
                return True
        except OSError:
            return False

    def close(self) -> None:
        if self.sim is not None and self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
