"""`python -m miners.sim` as a subprocess: inventory, serving, clean SIGTERM, argument errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from miners.sim.cli import build_parser, spec_from_args
from miners.sim.spec import SpecError
from tests.miners.conftest import PORT_OFFSET, _base

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "miners.sim", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"simulator exited early: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("no inventory written")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> str:
    """Signal the simulator and wait; never leave it running, even when the test fails."""
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"simulator ignored signal {sig} for {timeout} s") from None
    return stderr


@pytest.mark.slow
def test_cli_serves_and_exits_cleanly_on_sigterm(tmp_path):
    inventory = tmp_path / "inventory.json"
    base = _base()
    proc = _run("--proto", "2", "--antminer", "1", "--base", base, "--seed", "7",
                "--port-offset", str(PORT_OFFSET), "--inventory", str(inventory))  # fmt: skip
    try:
        _wait_for(inventory, proc)
        entries = json.loads(inventory.read_text())
        assert [e["kind"] for e in entries] == ["protoos", "protoos", "antminer"]
        assert entries[0]["host"] == base
        assert {e["password"] for e in entries} == {"rigwarden-sim-7"}
        assert set(entries[0]) == {"kind", "host", "ports", "serial", "mac", "model", "password"}
        rpc = entries[2]
        with socket.create_connection((rpc["host"], rpc["ports"]["rpc"]), timeout=5) as conn:
            conn.sendall(b'{"command":"version"}')
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert data.endswith(b"\x00") and b"VERSION" in data
    finally:
        stderr = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, stderr
    assert "ready" in stderr


@pytest.mark.slow
def test_cli_writes_inventory_to_stdout_and_is_stable_per_seed(tmp_path):
    outputs = []
    for _ in range(2):
        proc = _run("--antminer", "2", "--base", _base(), "--seed", "3", "--default-password",
                    "--port-offset", str(PORT_OFFSET))  # fmt: skip
        try:
            line = proc.stdout.readline()
            text = line
            while not text.rstrip().endswith("]"):
                text += proc.stdout.readline()
            outputs.append(json.loads(text))
        finally:
            _stop(proc)
        assert proc.returncode == 0
    ids = [[(e["serial"], e["mac"]) for e in out] for out in outputs]
    assert ids[0] == ids[1]
    assert {e["password"] for e in outputs[0]} == {"root"}


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--proto", "-1"],
        ["--proto", "1", "--base", "10.0.0.1"],
        ["--proto", "1", "--password", "x", "--default-password"],
        ["--proto", "1", "--control", "0.0.0.0:9000"],
        ["--proto", "1", "--spec", "/nonexistent.yaml"],
        ["--antminer", "1", "--port-offset", "nope"],
    ],
)
@pytest.mark.slow
def test_cli_rejects_bad_arguments_with_exit_2(args):
    proc = _run(*args)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "error" in stderr.lower()


@pytest.mark.slow
def test_unwritable_inventory_is_a_bad_argument(tmp_path):
    for target in (tmp_path / "missing" / "inv.json", tmp_path):
        proc = _run("--proto", "1", "--base", _base(), "--port-offset", str(PORT_OFFSET),
                    "--inventory", str(target))  # fmt: skip
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 2, stderr
        assert "--inventory" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_control_port_in_use_exits_1_without_traceback(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run("--proto", "1", "--base", _base(), "--port-offset", str(PORT_OFFSET),
                    "--control", f"127.0.0.1:{port}",
                    "--inventory", str(tmp_path / "inv.json"))  # fmt: skip
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1, stderr
    assert "--control" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "inv.json").exists()  # never announced a fleet it then dropped


def test_spec_file_groups(tmp_path):
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(
        "seed: 5\n"
        "groups:\n"
        "  - {kind: protoos, count: 2, tls: false}\n"
        "  - {kind: antminer, count: 1, model: Antminer S21, quirks: true}\n"
        "  - {kind: protoos, count: 1, default_password: true}\n"
    )
    spec = spec_from_args(build_parser().parse_args(["--spec", str(spec_file)]))
    groups = spec.resolved_groups()
    assert [g.count for g in groups] == [2, 1, 1]
    assert groups[0].password == "rigwarden-sim-5" and groups[0].tls is False
    assert groups[1].model == "Antminer S21" and groups[1].quirks
    assert groups[2].password is None
    spec_file.write_text("groups:\n  - {kind: protoos, count: 1, colour: red}\n")
    with pytest.raises(SpecError, match="colour"):
        spec_from_args(build_parser().parse_args(["--spec", str(spec_file)]))
    spec_file.write_text("groups:\n  - {kind: antminer, count: 1, model: Rig}\n")
    with pytest.raises(SpecError, match="unknown antminer model"):
        spec_from_args(build_parser().parse_args(["--spec", str(spec_file)]))


def _control(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_cli_shards_over_processes_and_proxies_control(tmp_path):
    inventory = tmp_path / "inventory.json"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        control_port = probe.getsockname()[1]
    proc = _run("--proto", "2", "--antminer", "2", "--processes", "2", "--base", _base(),
                "--port-offset", str(PORT_OFFSET), "--inventory", str(inventory),
                "--control", f"127.0.0.1:{control_port}", start_new_session=True)  # fmt: skip
    try:
        _wait_for(inventory, proc)
        entries = json.loads(inventory.read_text())
        assert [e["kind"] for e in entries] == ["protoos", "protoos", "antminer", "antminer"]
        status, listing = _control(control_port, "GET", "/miners")
        assert status == 200 and [m["host"] for m in listing] == [e["host"] for e in entries]
        last = entries[-1]
        status, _ = _control(
            control_port, "POST", f"/miners/{last['host']}/faults", {"kind": "offline"}
        )
        assert status == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((last["host"], last["ports"]["rpc"]), timeout=2)
        assert _control(control_port, "GET", f"/miners/{last['host']}")[1]["down"] is True
        status, body = _control(control_port, "POST", "/faults", {"kind": "slow", "ms": 1})
        assert (status, body["count"]) == (200, 4)
        hosts = [entries[0]["host"], last["host"]]
        status, body = _control(
            control_port, "POST", "/faults", {"kind": "http500", "hosts": hosts}
        )
        assert (status, body["count"]) == (200, 2)
        assert _control(control_port, "DELETE", "/faults")[1]["cleared"] == 4
        assert _control(control_port, "GET", "/miners/127.1.2.3")[0] == 404
        with socket.create_connection((last["host"], last["ports"]["rpc"]), timeout=2):
            pass
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group gets it
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert "2 processes" in stderr and "died" not in stderr


@pytest.mark.slow
def test_cli_exits_1_when_a_shard_dies(tmp_path):
    inventory = tmp_path / "inventory.json"
    proc = _run("--proto", "1", "--antminer", "1", "--processes", "2", "--base", _base(),
                "--port-offset", str(PORT_OFFSET), "--inventory", str(inventory))  # fmt: skip
    try:
        _wait_for(inventory, proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "died" in stderr


def test_flavour_and_label_password_from_flags_and_spec_file(tmp_path):
    args = build_parser().parse_args(["--proto", "2", "--antminer", "1", "--flavour", "field",
                                      "--factory-password", "Label-1234"])  # fmt: skip
    proto, antminer = spec_from_args(args).resolved_groups()
    assert (proto.flavour, proto.password, proto.factory_password) == ("field", None, "Label-1234")
    assert (antminer.password, antminer.factory_password) == (None, None)  # root/root
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(
        "groups:\n"
        "  - {kind: protoos, count: 1, flavour: field}\n"
        "  - {kind: protoos, count: 1, default_password: Label-5678}\n"
    )
    field, label = spec_from_args(build_parser().parse_args(["--spec", str(spec_file)]))\
        .resolved_groups()  # fmt: skip
    assert field.flavour == "field" and field.password == "rigwarden-sim-1"
    assert (label.password, label.factory_password, label.factory) == (None, "Label-5678", True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--proto", "1", "--flavour", "vendor"])
