"""The agent against the REAL server: daphne on the test database and Redis, the agent as its
own process (``python -m fleetnode``), real simulated miners — on loopback, and in the real
topology: agent and miners in a network namespace the server can't dial into (``sites.py``).

enroll (code from ``create_enrollment_code``) → the operator confirms the printed fingerprint
through the API → miners paired to the node → the node polls them and their telemetry is
stored → a reboot from the API reaches the simulated rig through the node → the server
restarts and the node comes back by itself → revoked, it stops (exit 3) and stays out.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command, get_commands

from fleetnode.state import State
from tests.fleet.nodes.live import DAPHNE, DAPHNE_ARGS, ROOT, free_port, test_database_url
from tests.fleetnode.sites import LoopbackSite, NamespaceSite, namespace_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _server_missing() -> str:
    try:
        import fleet.nodes.consumer  # noqa: F401
    except ImportError as exc:
        return f"the server side of fleet nodes is not there yet ({exc})"
    if "create_enrollment_code" not in get_commands():
        return "manage.py create_enrollment_code does not exist yet"
    if not os.environ.get("REDIS_URL"):
        return "needs REDIS_URL: daphne and the test process share the channel layer"
    return ""


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 60, logs: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s\n{logs()}")
        time.sleep(0.3)


class Daphne:
    """The server as a process on a fixed port, so it can be restarted under the node."""

    def __init__(self, tmp_path: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.base = f"http://{host}:{self.port}"
        self.log_path = tmp_path / "daphne.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_log: Path | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        env.update(
            DATABASE_URL=test_database_url(),
            FLEET_TESTING="1",
            SECRET_KEY=django_settings.SECRET_KEY,
            FLEET_MASTER_KEY=base64.urlsafe_b64encode(django_settings.FLEET_MASTER_KEY).decode(),
            PYTHONDONTWRITEBYTECODE="1",
            ALLOWED_HOSTS=f"127.0.0.1,localhost,{host}",
            # the simulated rigs live on 127.x: allowed as an operator would list a range
            DISCOVERY_ALLOWED_NETWORKS="127.0.0.0/8",
        )
        self.env = env

    def start(self) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [
                str(DAPHNE),
                "-b",
                self.host,
                "-p",
                str(self.port),
                *DAPHNE_ARGS,
                "config.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail("daphne exited: " + self.logs())
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as reply:
                    return bool(reply.status == 200)
            except OSError:
                return False

        wait_for("daphne answering", healthy, logs=self.logs)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def logs(self) -> str:
        text = self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
        if self.worker_log is not None and self.worker_log.exists():
            text += "\n--- worker ---\n" + self.worker_log.read_text()[-2000:]
        return text


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _last_line(command: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(command, stdout=out, **options)
    return out.getvalue().strip().splitlines()[-1]


def owner_api(server: Daphne) -> Api:
    """The org ``node-org`` with a site and an owner, and an API client holding their token."""
    call_command("create_org", name="Node Org", slug="node-org", stdout=io.StringIO())
    call_command("create_site", org="node-org", name="Remote", slug="remote", stdout=io.StringIO())
    call_command(
        "create_user",
        email="owner@node.example",
        password="pass-Word-123456",
        org="node-org",
        role="owner",
        stdout=io.StringIO(),
    )
    return Api(server.base, _last_line("create_api_token", email="owner@node.example"))


@contextlib.contextmanager
def enrolling(
    agent: Agent, server: Daphne, site: LoopbackSite | NamespaceSite
) -> Iterator[tuple[subprocess.Popen[str], str, int, str]]:
    """``fleetnode enroll`` with a fresh code, run until it waits for the operator's
    confirmation: yields the process, what it printed, the node id and the fingerprint; the
    process is killed on the way out if it is still running."""
    code = _last_line("create_enrollment_code", org="node-org")
    enroll = subprocess.Popen(
        agent.command(
            "enroll",
            "--server",
            server.base,
            "--code",
            code,
            "--name",
            "site-gw",
            *site.enroll_args,
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert enroll.stdout is not None
        printed = ""
        while "Waiting for confirmation" not in printed:
            line = enroll.stdout.readline()
            assert line, f"enroll ended early:\n{printed}"
            printed += line
        node_id = int(re.search(r"Node id:\s+(\d+)", printed).group(1))  # type: ignore[union-attr]
        fingerprint = re.search(r"Fingerprint:\s+([0-9a-f]{16})", printed).group(1)  # type: ignore[union-attr]
        yield enroll, printed, node_id, fingerprint
    finally:
        if enroll.poll() is None:
            enroll.kill()


def wait_connected(agent: Agent, server: Daphne, api: Api, node_id: int) -> Callable[[], str]:
    """Wait until the server sees the running agent connected; returns what to show when a
    later wait fails (the agent's log, then the server's)."""
    logs = lambda: agent.logs() + "\n--- server ---\n" + server.logs()  # noqa: E731
    wait_for(
        "node connected",
        lambda: api.call("GET", f"/api/v1/fleet-nodes/{node_id}/")[1].get("connected"),
        logs=logs,
    )
    return logs


@pytest.fixture(params=["loopback", "netns"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LoopbackSite | NamespaceSite]:
    missing = _server_missing()
    if missing:
        print(f"SKIP fleet-node end-to-end: {missing}")
        pytest.skip(missing)
    if request.param == "netns":
        why = namespace_unavailable()
        if why:
            print(f"SKIP fleet-node topology test: {why}")
            pytest.skip(why)
    made = LoopbackSite(tmp_path) if request.param == "loopback" else NamespaceSite(tmp_path)
    yield made
    made.close()


@pytest.fixture
def server(
    site: LoopbackSite | NamespaceSite, transactional_db: None, tmp_path: Path
) -> Iterator[Daphne]:
    """daphne, and a Celery worker for the jobs an action becomes (same database, Redis)."""
    daphne = Daphne(tmp_path, site.server_host)
    daphne.start()
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [
                str(DAPHNE.parent / "celery"),
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-Q",
                "celery",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=daphne.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daphne.worker_log = tmp_path / "worker.log"
    yield daphne
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    daphne.stop()


class Agent:
    """``python -m fleetnode`` on the site (inside the namespace for ``NamespaceSite``)."""

    def __init__(self, state_dir: Path, tmp_path: Path, prefix: list[str]) -> None:
        self.prefix = prefix
        self.state_dir = state_dir
        self.log_path = tmp_path / "agent.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [
            *self.prefix,
            sys.executable,
            "-m",
            "fleetnode",
            "--state-dir",
            str(self.state_dir),
            *args,
        ]

    def run(self) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.command("run", "--no-pyasic", "--metrics", f"127.0.0.1:{self.metrics_port}"),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""

    def status(self) -> dict[str, Any]:
        return State(self.state_dir).status()

    def metrics(self) -> str:
        """``/metrics`` from where the agent runs (it listens on that loopback only)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
        out = subprocess.run(
            [*self.prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
        return out.stdout


def test_enroll_confirm_telemetry_reboot_and_reconnect(
    site: LoopbackSite | NamespaceSite, server: Daphne, tmp_path: Path
) -> None:
    api = owner_api(server)
    agent = Agent(tmp_path / "node-state", tmp_path, site.prefix)

    # 1. enroll: the agent prints its fingerprint and waits; the operator confirms it
    with enrolling(agent, server, site) as (enroll, printed, node_id, fingerprint):
        status, node = api.call("GET", f"/api/v1/fleet-nodes/{node_id}/")
        assert (status, node["status"], node["fingerprint"]) == (
            200,
            "awaiting_confirmation",
            fingerprint,
        )
        assert (
            api.call("POST", f"/api/v1/fleet-nodes/{node_id}/confirm", {"fingerprint": "0" * 16})[0]
            == 400
        )
        status, node = api.call(
            "POST", f"/api/v1/fleet-nodes/{node_id}/confirm", {"fingerprint": fingerprint}
        )
        assert (status, node["status"]) == (200, "confirmed"), node
        assert enroll.wait(timeout=90) == 0, printed + (enroll.stdout.read() or "")  # type: ignore[union-attr]
    state = State(agent.state_dir)
    assert state.api_key() and state.config().node_id == node_id  # type: ignore[union-attr]

    # 2. pair the simulated rigs to the node (the server never dials them)
    site_id = _site_id(api)
    miner_ids = {}
    for entry in site.inventory:
        driver = "protoos" if entry["kind"] == "protoos" else "antminer"
        port = entry["ports"]["http"] if driver == "protoos" else entry["ports"]["rpc"]
        body = {
            "site": site_id,
            "host": entry["host"],
            "port": port,
            "driver": driver,
            "username": "root" if driver == "antminer" else "",
            "password": entry["password"],
        }
        status, miner = api.call("POST", f"/api/v1/fleet-nodes/{node_id}/miners", body)
        assert status == 201, miner
        miner_ids[entry["host"]] = miner["id"]
        if isinstance(site, NamespaceSite):
            assert not site.server_reaches(entry["host"], port), (
                "the server must not reach the miners"
            )

    # 3. run the agent: it connects, gets its key and miners, polls, pushes telemetry
    agent.run()
    try:
        logs = wait_connected(agent, server, api, node_id)
        for host, miner_id in miner_ids.items():
            wait_for(
                f"telemetry of {host} stored",
                lambda m=miner_id: (
                    api.call("GET", f"/api/v1/miners/{m}/")[1].get("latest") or {}
                ).get("hashrate_ths"),
                timeout=90,
                logs=logs,
            )
        assert State(agent.state_dir).node_key() is not None
        metrics = agent.metrics()
        assert (
            "fleetnode_telemetry_batches_acked_total" in metrics
            and "fleetnode_connected 1.0" in metrics
        )

        # 4. a reboot from the API reaches the simulated rig through the node
        host = site.inventory[0]["host"]
        status, body = api.call("POST", f"/api/v1/miners/{miner_ids[host]}/actions/reboot/", {})
        assert status in (200, 201, 202), body
        wait_for(
            "the simulated rig rebooting",
            lambda: site.rebooting(host),
            timeout=60,
            logs=logs,
        )

        # 5. the server restarts; the node reconnects by itself
        first = agent.status().get("connected_at")
        server.stop()
        wait_for(
            "node noticed the server going",
            lambda: agent.status().get("connected") is False,
            logs=logs,
        )
        server.start()
        wait_for(
            "node reconnected",
            lambda: agent.status().get("connected") and agent.status().get("connected_at") != first,
            timeout=120,
            logs=logs,
        )
        wait_for(
            "server sees it",
            lambda: api.call("GET", f"/api/v1/fleet-nodes/{node_id}/")[1].get("connected"),
            logs=logs,
        )
        if site.name != "netns":  # (the netns run stops by SIGTERM below: exit 0)
            # 6. revoked: the stream closes with 4403, the agent stops with exit 3 and a message,
            # and a restart can't bring it back
            status, body = api.call(
                "POST", f"/api/v1/fleet-nodes/{node_id}/revoke", {"reason": "test"}
            )
            assert (status, body["status"]) == (200, "revoked"), body
            assert agent.proc is not None
            assert agent.proc.wait(timeout=60) == 3, logs()
            assert agent.status()["last_close"]["code"] == 4403
            assert "revoked" in agent.logs()
            again = subprocess.run(
                agent.command("run", "--metrics", "off"),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert again.returncode == 3 and "refuses this node's api key" in again.stderr, (
                again.stderr
            )
    finally:
        code = agent.stop()
    assert code == (0 if site.name == "netns" else 3), agent.logs()


def _site_id(api: Api) -> int:
    status, body = api.call("GET", "/api/v1/sites/")
    assert status == 200, body
    rows = body["results"] if isinstance(body, dict) else body
    return int(next(row["id"] for row in rows if row["slug"] == "remote"))
