"""Docker can't run here, so check what can be: compose shape and that every entrypoint works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def test_compose_has_the_processes_with_health_checks() -> None:
    services = COMPOSE["services"]
    pollers = {f"poll-{k}": ["poller", str(k)] for k in range(4)}  # FLEET_POLL_QUEUES=4
    assert set(services) == {"postgres", "redis", "web", "worker", "beat", *pollers}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    commands = {name: [name] for name in ("web", "worker", "beat")} | pollers
    for name, command in commands.items():
        assert services[name]["command"] == command
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pgdata" in COMPOSE["volumes"]


def test_dockerfile_runs_as_non_root_and_collects_static() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "USER rigwarden" in text
    assert "collectstatic" in text
    assert "requirements/base.txt" in text


@pytest.mark.parametrize(
    "role,args",
    [
        ("manage", ["check"]),
        ("worker", ["--help"]),
        ("beat", ["--help"]),
        ("daphne", ["--help"]),
    ],
)
@pytest.mark.slow
def test_entrypoint_roles_resolve_to_working_commands(
    role: str, args: list[str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), role, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_env_example_names_every_required_secret() -> None:
    text = (ROOT / "docker" / "env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "SECRET_KEY", "FLEET_MASTER_KEY", "ALLOWED_HOSTS"):
        assert f"{name}=" in text


def test_dockerfile_directive_is_honoured_and_code_is_not_writable_by_the_runtime_user() -> None:
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    # a parser directive counts only on the very first line
    assert not any(line.startswith("# syntax=") for line in lines[1:])
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies and not any("--chown=rigwarden" in line for line in copies), copies
    assert "chown rigwarden:rigwarden /data" in "\n".join(lines)
