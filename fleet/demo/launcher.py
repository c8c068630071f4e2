"""``python -m fleet.demo [--banner TEXT] -- SERVER COMMAND…``: the demo ``make run`` starts.

1. Starts the simulators (``python -m miners.sim``) in a process group of their own, with ports
   shifted above 1024 (no root needed); on a host where only 127.0.0.1 exists, in
   port-per-miner mode (``--single-address``).
2. Waits for their inventory, seeds the demo org and pairs the miners into its two sites
   (``manage.py seed_demo_fleet --seed-demo``) and gives a few of them a fault.
3. Prints one line about the fleet, the banner and the demo sign-in, then runs the server.
   The server and the pairing may dial the simulators' addresses: ``DISCOVERY_ALLOWED_NETWORKS``
   gets their block for these child processes only, and the server ``DEMO_SIM_PASSWORD`` (the
   simulators' password, which the discovery page shows for pairing them).
4. When the server exits, or on SIGINT/SIGTERM/SIGHUP (passed on to the server), stops the
   server and then the simulators' whole process group. Children also get SIGTERM should this
   process die without cleaning up (Linux ``PR_SET_PDEATHSIG``).

No Django here: everything Django runs in the child processes. Settings (environment):
``DEMO_PROTO`` (200) and ``DEMO_ANTMINER`` (100) miners, ``DEMO_SIM_BASE`` (127.78.0.1),
``DEMO_SIM_PORT_OFFSET`` (10000), ``DEMO_SINGLE_ADDRESS`` (``auto``: only when ``DEMO_SIM_BASE``
can't be bound; ``1``/``0`` force it), ``DEMO_FAULTS`` (``1``), ``DATA_DIR`` (``./var``). Files
in ``DATA_DIR/demo/``: ``inventory.json``, ``sim.log``, ``setup.log``, ``sim.pid``,
``server.pid`` and ``control`` (the simulators' fault API, e.g. ``http://127.0.0.1:PORT``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import http.client
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from fleet.demo import plan

ROOT = Path(__file__).resolve().parents[2]
SINGLE_ADDRESS = "127.0.0.1"
INVENTORY_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
PR_SET_PDEATHSIG = 1


class DemoError(Exception):
    """A setting the demo can't run with (exit 2)."""


class _Stopped(Exception):
    """A signal came during the set-up: stop without starting the server."""


@dataclass(frozen=True)
class Settings:
    proto: int
    antminer: int
    base: str
    port_offset: int
    single: str  # auto, 1, 0
    faults: bool
    data_dir: Path

    @property
    def total(self) -> int:
        return self.proto + self.antminer


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DemoError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise DemoError(f"{name} must be between {low} and {high}, got {value}")
    return value


def settings_from(env: dict[str, str]) -> Settings:
    base = env.get("DEMO_SIM_BASE", "").strip() or "127.78.0.1"
    try:
        if not ipaddress.IPv4Address(base).is_loopback:
            raise ValueError
    except ValueError:
        raise DemoError(f"DEMO_SIM_BASE must be a 127.x.y.z address, got {base!r}") from None
    single = (env.get("DEMO_SINGLE_ADDRESS", "").strip() or "auto").lower()
    if single not in ("auto", "1", "0"):
        raise DemoError(f"DEMO_SINGLE_ADDRESS must be auto, 1 or 0, got {single!r}")
    return Settings(
        proto=_int(env, "DEMO_PROTO", 200, 0, 20000),
        antminer=_int(env, "DEMO_ANTMINER", 100, 0, 20000),
        base=base,
        port_offset=_int(env, "DEMO_SIM_PORT_OFFSET", 10000, 1024, 60000),
        single=single,
        faults=env.get("DEMO_FAULTS", "1").strip().lower() not in ("0", "false", "no", "off"),
        data_dir=Path(env.get("DATA_DIR", "").strip() or ROOT / "var").resolve(),
    )


def _bindable(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:  # anything but "no such address" is for the simulator to report
            return exc.errno != errno.EADDRNOTAVAIL
    return True


def use_single_address(settings: Settings) -> bool:
    if settings.single != "auto":
        return settings.single == "1"
    return not _bindable(settings.base)


def sim_network(settings: Settings, single: bool) -> str:
    """The smallest block holding every simulated miner, for DISCOVERY_ALLOWED_NETWORKS."""
    if single:
        return f"{SINGLE_ADDRESS}/32"
    first = ipaddress.IPv4Address(settings.base)
    last = first + max(0, settings.total - 1)
    network = ipaddress.IPv4Network(first)
    while last not in network:
        network = network.supernet()
    return str(network)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launcher goes away (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(cmd: Sequence[str], env: dict[str, str], out: IO[Any] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter, the server command from make
        list(cmd),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
        start_new_session=True,  # its own process group: stopped as a whole, not by Ctrl-C
        preexec_fn=_die_with_parent,
    )


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the child's whole process group, wait, then kill whatever is left of it."""
    pgid = proc.pid  # a session leader: its group id is its pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, 0)  # anything left (a shard, a hung parent)?
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def sim_password(inventory: list[dict[str, Any]]) -> str:
    """The one password the simulators share (the inventory's), or "" when they differ: the
    server gets it as ``DEMO_SIM_PASSWORD`` so the discovery page can say what to pair with
    (the drivers' defaults are the factory logins, which the simulators don't keep)."""
    passwords = {str(entry.get("password") or "") for entry in inventory}
    return passwords.pop() if len(passwords) == 1 else ""


class Demo:
    def __init__(self, settings: Settings, banner: str, server: list[str]) -> None:
        self.settings = settings
        self.banner = banner
        self.server_cmd = server
        self.dir = settings.data_dir / "demo"
        self.inventory = self.dir / "inventory.json"
        self.sim: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.stopping: int | None = None
        self.env = dict(os.environ)
        self.setup_log: IO[str] | None = None
        self.control = ""
        self.login = ""
        self.stop_since: float | None = None

    # -- steps -----------------------------------------------------------------------------

    def start_sim(self, single: bool) -> None:
        s = self.settings
        control = f"127.0.0.1:{_free_port()}"
        cmd = [
            sys.executable, "-m", "miners.sim",
            "--proto", str(s.proto), "--antminer", str(s.antminer),
            "--base", s.base, "--port-offset", str(s.port_offset),
            "--inventory", str(self.inventory), "--control", control,
        ]  # fmt: skip
        cmd += ["--single-address", SINGLE_ADDRESS] if single else ["--ssh"]  # SSH: an address each
        with open(self.dir / "sim.log", "wb") as log:
            self.sim = _spawn(cmd, self.env, log)
        (self.dir / "sim.pid").write_text(f"{self.sim.pid}\n")
        (self.dir / "control").write_text(f"http://{control}\n")
        self.control = f"http://{control}"

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - this interpreter, manage.py, fixed arguments
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )

    def note(self, text: str) -> None:
        if self.setup_log is not None:
            self.setup_log.write(text.rstrip() + "\n")
            self.setup_log.flush()

    def wait_inventory(self) -> list[dict[str, Any]] | None:
        assert self.sim is not None
        deadline = time.monotonic() + INVENTORY_TIMEOUT
        while time.monotonic() < deadline and self.stopping is None:
            if self.inventory.exists():
                with contextlib.suppress(ValueError, OSError):
                    data = json.loads(self.inventory.read_text(encoding="utf-8"))
                    if isinstance(data, list):
                        return data
            if self.sim.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def inject_faults(self, inventory: list[dict[str, Any]]) -> None:
        host, _, port = self.control.removeprefix("http://").rpartition(":")
        for name, kind, params in plan.faults(inventory):
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            try:
                conn.request("POST", f"/miners/{name}/faults", json.dumps({"kind": kind, **params}))
                status = conn.getresponse().status
                self.note(f"fault {kind} {params} on {name}: {status}")
            except OSError as exc:
                self.note(f"fault {kind} on {name} not set: {exc}")
            finally:
                conn.close()

    def check_stop(self) -> None:
        if self.stopping is not None:
            raise _Stopped

    def fleet(self) -> str:
        """Seed the demo org, start the simulators and pair them: the line to print."""
        s = self.settings
        if not s.total:
            self.seed()
            return "Demo fleet: none (DEMO_PROTO and DEMO_ANTMINER are 0)"
        single = use_single_address(s)
        network = sim_network(s, single)
        allowed = [self.env.get("DISCOVERY_ALLOWED_NETWORKS", "").strip(), network]
        self.env["DISCOVERY_ALLOWED_NETWORKS"] = ",".join(a for a in allowed if a)
        self.start_sim(single)
        inventory = self.wait_inventory()
        self.check_stop()
        if inventory is None:
            self.stop_sim()
            self.seed()
            return f"Demo fleet: the simulators did not start (see {self.dir / 'sim.log'})"
        paired = self.manage(
            "seed_demo_fleet", "--seed-demo", "--prune", "--inventory", str(self.inventory)
        )
        self.check_stop()
        self.note(paired.stdout + paired.stderr)
        if paired.returncode != 0:
            self.stop_sim()
            self.seed()
            last = (paired.stderr.strip().splitlines() or ["?"])[-1]
            return f"Demo fleet: pairing failed ({last}); see {self.dir / 'setup.log'}"
        self.login = "\n".join(paired.stdout.strip().splitlines()[:-1])  # seed_demo's lines
        password = sim_password(inventory)
        if password:  # the discovery page tells the user (DEMO_SIM_PASSWORD, demo only)
            self.env["DEMO_SIM_PASSWORD"] = password
        if not single:  # a few SSH hosts to open terminals to (terminals.seed_demo_ssh)
            ssh = self.manage("seed_demo_ssh", "--inventory", str(self.inventory))
            self.note(ssh.stdout + ssh.stderr)
        if s.faults:
            self.inject_faults(inventory)
        where = f"on {SINGLE_ADDRESS}, one port block each" if single else f"in {network}"
        self.note(f"{len(inventory)} simulated miners {where}; fault API {self.control}")
        return f"Demo fleet: {len(inventory)} simulated miners (stop with Ctrl-C)"

    def seed(self) -> None:
        """The demo org and its sign-in, without a fleet."""
        seeded = self.manage("seed_demo")
        self.check_stop()
        if seeded.returncode != 0:
            raise RuntimeError(f"manage.py seed_demo failed:\n{seeded.stderr}")
        self.login = seeded.stdout

    def stop_sim(self) -> None:
        if self.sim is not None:
            _stop_group(self.sim)
            self.sim = None

    # -- signals and the server ------------------------------------------------------------

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = signum
        if self.server is not None and self.server.poll() is None:
            forward = signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, forward)

    def serve(self) -> int:
        self.server = _spawn(self.server_cmd, self.env, None)
        (self.dir / "server.pid").write_text(f"{self.server.pid}\n")
        if self.stopping is not None:  # a signal came while it was starting
            self.on_signal(self.stopping, None)
        while True:
            try:
                code = self.server.wait(1.0)
                break
            except subprocess.TimeoutExpired:
                if self.stopping is not None and self._stop_overdue():
                    _stop_group(self.server, signal.SIGKILL)
                    code = -signal.SIGKILL
                    break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)  # nothing of the server outlives it
        return 0 if self.stopping is not None else code

    def _stop_overdue(self) -> bool:
        if self.stop_since is None:
            self.stop_since = time.monotonic()
        return time.monotonic() - self.stop_since > STOP_TIMEOUT

    def run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inventory.unlink(missing_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        try:
            with open(self.dir / "setup.log", "w", encoding="utf-8") as self.setup_log:
                line = self.fleet()
            self.setup_log = None
            print(line)
            if self.banner:
                print(self.banner)
            if self.login.strip():
                print(self.login.rstrip())
            print("", flush=True)
            return self.serve()
        except _Stopped:
            return 0
        finally:
            self.stop_sim()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.demo",
        description="Run the server with a simulated demo fleet; stop both together.",
    )
    parser.add_argument("--banner", default="", help="printed after the fleet line")
    parser.add_argument("server", nargs=argparse.REMAINDER, help="-- the server command")
    args = parser.parse_args(argv)
    server = args.server[1:] if args.server[:1] == ["--"] else args.server
    if not server:
        parser.error("give the server command after --")
    try:
        settings = settings_from(dict(os.environ))
    except DemoError as exc:
        print(f"fleet.demo: {exc}", file=sys.stderr)
        return 2
    try:
        return Demo(settings, args.banner, server).run()
    except RuntimeError as exc:
        print(f"fleet.demo: {exc}", file=sys.stderr)
        return 1
