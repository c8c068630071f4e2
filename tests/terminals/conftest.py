"""A real OpenSSH sshd on a loopback port: its own config, host keys, pid file, ``-D -e``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    port: int
    client_key: str
    dir: Path
    proc: subprocess.Popen[bytes]

    def new_host_key(self) -> None:
        """Restart with a different host key (a changed host)."""
        self.proc.terminate()
        self.proc.wait(5)
        (self.dir / "host_ed25519").unlink()
        (self.dir / "host_ed25519.pub").unlink()
        _keygen(self.dir / "host_ed25519")
        self.proc = _start(self.dir, self.port)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(d: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise RuntimeError("sshd did not start")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (scripts/ensure-services.sh installs it)")
    d = tmp_path / "sshd"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    _keygen(d / "host_ed25519")
    _keygen(d / "client")
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n"
        f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
    )
    proc = _start(d, port)
    server = Sshd(port, (d / "client").read_text(), d, proc)
    yield server
    server.proc.terminate()
    server.proc.wait(5)
