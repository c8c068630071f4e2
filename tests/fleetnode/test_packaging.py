"""The agent as installed: CLI entry points, its own requirements, the systemd unit and the
container recipe (docker itself can't run here; their content can be checked)."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from fleetnode.state import State

ROOT = Path(__file__).resolve().parents[2]


def fleetnode(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetnode", "--state-dir", str(state_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_agent_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, fleetnode.cli, fleetnode.agent, fleetnode.client;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'django', 'rest_framework', 'channels', 'celery', 'accounts', 'config', 'fleet'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_status_of_an_empty_and_an_enrolled_state_dir(tmp_path: Path, state: State) -> None:
    empty = fleetnode("status", state_dir=tmp_path / "none")
    assert empty.returncode == 0 and "Not enrolled" in empty.stdout
    human = fleetnode("status", state_dir=state.dir)
    assert human.returncode == 0, human.stderr
    assert "Node 41 'test-node' — enrolled" in human.stdout
    assert state.fingerprint() in human.stdout
    after = subprocess.run(  # the options may follow the command too
        [sys.executable, "-m", "fleetnode", "status", "--json", "--state-dir", str(state.dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(after.stdout)["node_id"] == 41
    report = json.loads(fleetnode("status", "--json", state_dir=state.dir).stdout)
    assert report["enrolled"] is True and report["node_id"] == 41
    assert report["telemetry"] == {
        "buffered": 0,
        "buffered_bytes": 0,
        "dropped": 0,
        "next_batch_seq": 1,
    }
    assert report["permission_problems"] == []


def test_bad_usage_gets_a_message_not_a_traceback(tmp_path: Path, state: State) -> None:
    plain = fleetnode(
        "enroll", "--server", "http://rigs.example.com", "--code", "x", state_dir=tmp_path / "n"
    )
    assert plain.returncode == 2 and "refusing plain http" in plain.stderr
    scheme = fleetnode("enroll", "--server", "ftp://x", "--code", "x", state_dir=tmp_path / "n")
    assert scheme.returncode == 2 and "http(s) URL" in scheme.stderr
    again = fleetnode(
        "enroll", "--server", "http://127.0.0.1:9", "--code", "x", state_dir=state.dir
    )
    assert again.returncode == 1 and "already holds an enrolled node" in again.stderr
    public = fleetnode("run", "--metrics", "0.0.0.0:9464", state_dir=state.dir)
    assert public.returncode == 2 and "loopback only" in public.stderr
    nothing = fleetnode("run", state_dir=tmp_path / "empty")
    assert nothing.returncode == 1 and "run `fleetnode enroll` first" in nothing.stderr
    for result in (plain, scheme, again, public, nothing):
        assert "Traceback" not in result.stderr


def test_node_requirements_pin_what_the_server_pins() -> None:
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / "requirements" / name).read_text().splitlines()
        pairs = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
        return {k.split("[")[0].lower(): v for k, v in pairs}

    node, base = pins("fleetnode.txt"), pins("base.txt")
    assert set(node) == {"aiohttp", "cryptography", "prometheus-client", "pyasic-rs"}
    assert all(base[name] == version for name, version in node.items())


def test_systemd_unit_is_hardened_and_keeps_state_private() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "docker" / "fleetnode.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("python -m fleetnode run")
    assert service["User"] == "rigwarden-node"
    assert service["StateDirectory"] == "rigwarden-node" and service["StateDirectoryMode"] == "0700"
    assert service["RestartPreventExitStatus"] == "3"
    for option in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "RestrictNamespaces",
    ):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert "ProcSubset" not in service  # host health reads /proc/stat, meminfo, uptime


def test_container_recipe_runs_the_agent_unprivileged() -> None:
    text = (ROOT / "docker" / "fleetnode.Dockerfile").read_text()
    assert "USER rigwarden-node" in text
    assert "requirements/fleetnode.txt" in text
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "fleetnode"]' in text
    assert "COPY fleet/" not in text and "manage.py" not in text  # none of the server
    compose = yaml.safe_load((ROOT / "docker" / "fleetnode.compose.yaml").read_text())
    service = compose["services"]["fleetnode"]
    assert service["network_mode"] == "host" and service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert any(v.endswith(":/var/lib/rigwarden-node") for v in service["volumes"])


def test_the_guide_names_exactly_the_metrics_the_node_serves() -> None:
    from fleetnode.metrics import Metrics

    served = {
        line.split()[2]
        for line in Metrics().render().decode().splitlines()
        if line.startswith("# TYPE") and not line.split()[2].endswith("_created")
    }
    text = (ROOT / "docs" / "fleet-node.md").read_text()
    named = set(re.findall(r"`(fleetnode_[a-z_]+)", text))
    named |= {
        "fleetnode_telemetry_batches_" + suffix for suffix in re.findall(r"`…_([a-z_]+)`", text)
    }
    assert named == served
