"""Shared plumbing for the benchmarks that need Django: a scratch PostgreSQL database the run
creates, migrates and drops; the org/site/user a fleet belongs to; small statistics helpers.

Nothing here is imported by the app. The database server is given by ``BENCH_DATABASE_URL``
(default ``postgres://postgres@127.0.0.1:5432``) and must be on loopback; the scratch database
is ``rw_bench_<name>_<pid>``, dropped (``WITH (FORCE)``) when the run ends, also on errors,
Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the simulator's shard processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            todo.extend(int(c) for c in children)
    return found


def tree_cpu(pid: int) -> float:
    return sum(proc_cpu(p) for p in proc_tree(pid))


def box_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_simulator(
    spec: dict[str, Any], processes: int, workdir: str, *extra: str
) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]]]:
    """``python -m miners.sim`` with `spec` in `processes` shards; returns once it has written
    its inventory (within 120 s). Its stderr goes to a file in `workdir`, never a pipe: under
    load the simulator logs, and a full pipe would stall it mid-run."""
    spec_file = Path(workdir, "spec.json")
    spec_file.write_text(json.dumps(spec))
    inventory = Path(workdir, "inventory.json")
    cmd = [sys.executable, "-m", "miners.sim", "--spec", str(spec_file), "--inventory",
           str(inventory), "--processes", str(processes), *extra]  # fmt: skip
    log = Path(workdir, "simulator.log")
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            raise RuntimeError(f"simulator exited ({proc.returncode}): {tail}")
        with contextlib.suppress(ValueError, OSError):
            entries: list[dict[str, Any]] = json.loads(inventory.read_text())
            if entries:
                return proc, entries
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError("simulator did not write its inventory within 120 s")


def _loopback_server(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("postgres", "postgresql") or not loopback:
        raise SystemExit(f"BENCH_DATABASE_URL must be a PostgreSQL server on loopback, not {url}")
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _admin(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def django_on_scratch_db(name: str, *, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Create ``rw_bench_<name>_<pid>``, point Django at it, migrate, yield its name; drop it.

    Settings come from the environment as in production; the run gets its own DATA_DIR,
    SECRET_KEY and FLEET_MASTER_KEY, loopback is dialable (the simulators live there), and
    Redis is left out (REDIS_URL unset: local-memory cache, no broker).
    """
    server = _loopback_server(os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER))
    database = f"rw_bench_{name}_{os.getpid()}"
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    with tempfile.TemporaryDirectory(prefix=f"rw-bench-{name}-") as data_dir:
        os.environ.pop("REDIS_URL", None)
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": f"{server}/{database}",
                "DATA_DIR": data_dir,
                "SECRET_KEY": secrets.token_urlsafe(48),
                "FLEET_MASTER_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "DISCOVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
                "LOG_LEVEL": "WARNING",
                **(extra_env or {}),
            }
        )
        _admin(server, f'CREATE DATABASE "{database}"')
        try:
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0, interactive=False)
            yield database
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            _admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            signal.signal(signal.SIGTERM, previous)


@dataclass
class World:
    org: Any
    sites: list[Any]
    viewer: Any


def make_world(sites: int, *, slug: str = "bench") -> World:
    """One organization with ``sites`` sites and a viewer (the built-in role, org-wide)."""
    from accounts.models import Membership, Organization, Role, Site, User

    org = Organization.unscoped.create(name=slug.title(), slug=slug)
    site_rows = [
        Site.unscoped.create(org=org, name=f"{slug} site {i:02d}", slug=f"{slug}-site-{i:02d}")
        for i in range(1, sites + 1)
    ]
    viewer = User.objects.create_user(email=f"viewer@{slug}.example", password=None)
    Membership.unscoped.create(
        user=viewer, org=org, role=Role.unscoped.get(slug="viewer", org__isnull=True)
    )
    return World(org, site_rows, viewer)


def backend_pid() -> int | None:
    """The PostgreSQL backend serving this process's default connection (opened if needed)."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    info = getattr(raw, "info", None)
    return getattr(info, "backend_pid", None)
