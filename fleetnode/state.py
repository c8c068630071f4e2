"""The node's state directory: every secret and every counter that must survive a restart.

One directory (mode 0700), one file per concern (mode 0600), each written atomically (a
temporary file in the same directory, fsync, rename, fsync of the directory) so a crash or a
full disk never leaves half a key or a seq high-water mark that went backwards.

    identity.key    Ed25519 identity (raw 32 bytes)      x25519.key  sealing key (raw 32 bytes)
    node.json       server URL, node id, name, CA file  api_key     the api key (text)
    node_key        the per-node data key (raw 32 bytes), delivered sealed in a signed command
    keys.json       trusted command keys {kid: base64}  seq.json    {kid: highest accepted seq}
    assignment.json the miners to poll (credentials stay encrypted under node_key)
    telemetry.json  {next_batch_seq, dropped}           buffer/     unacknowledged batches
    status.json     what `run` last saw (for `status`)
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetnode.protocol import b64decode, b64encode, fingerprint, public_bytes

DEFAULT_STATE_DIR = "/var/lib/rigwarden-node"
FILE_MODE = 0o600
DIR_MODE = 0o700


class StateError(RuntimeError):
    """The state directory can't be used as it is (message says what to do)."""


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> Path:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(DIR_MODE)
    return path


@dataclass(frozen=True, slots=True)
class NodeConfig:
    server: str
    node_id: int
    name: str
    fingerprint: str
    ca_file: str | None = None


class State:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    # --- files ----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.dir / name

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"can't read {self.path(name)}: {exc.strerror}") from exc

    def write_bytes(self, name: str, data: bytes) -> None:
        ensure_dir(self.dir)
        write_atomic(self.path(name), data)

    def read_json(self, name: str, default: Any) -> Any:
        raw = self.read_bytes(name)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StateError(
                f"{self.path(name)} is not valid JSON; restore it or re-enroll"
            ) from exc

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, json.dumps(value, sort_keys=True, indent=1).encode())

    # --- keys -----------------------------------------------------------------------------
    def identity(self, *, create: bool = False) -> Ed25519PrivateKey:
        raw = self.read_bytes("identity.key")
        if raw is None:
            if not create:
                raise StateError(f"no identity key in {self.dir}: run `fleetnode enroll` first")
            key = Ed25519PrivateKey.generate()
            self.write_bytes("identity.key", key.private_bytes_raw())
            return key
        if len(raw) != 32:
            raise StateError(f"{self.path('identity.key')} is damaged (not 32 bytes)")
        return Ed25519PrivateKey.from_private_bytes(raw)

    def fingerprint(self) -> str:
        return fingerprint(public_bytes(self.identity()))

    def sealing_key(self) -> X25519PrivateKey:
        raw = self.read_bytes("x25519.key")
        if raw is None:
            key = X25519PrivateKey.generate()
            self.write_bytes("x25519.key", key.private_bytes_raw())
            return key
        if len(raw) != 32:
            raise StateError(f"{self.path('x25519.key')} is damaged (not 32 bytes)")
        return X25519PrivateKey.from_private_bytes(raw)

    def node_key(self) -> bytes | None:
        raw = self.read_bytes("node_key")
        return raw if raw is not None and len(raw) == 32 else None

    def set_node_key(self, key: bytes) -> None:
        self.write_bytes("node_key", key)

    # --- enrollment -----------------------------------------------------------------------
    def config(self) -> NodeConfig | None:
        data = self.read_json("node.json", None)
        if not isinstance(data, dict):
            return None
        try:
            return NodeConfig(
                server=str(data["server"]),
                node_id=int(data["node_id"]),
                name=str(data.get("name", "")),
                fingerprint=str(data.get("fingerprint", "")),
                ca_file=data.get("ca_file") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{self.path('node.json')} is damaged; re-enroll") from exc

    def set_config(self, config: NodeConfig) -> None:
        self.write_json(
            "node.json",
            {
                "server": config.server,
                "node_id": config.node_id,
                "name": config.name,
                "fingerprint": config.fingerprint,
                "ca_file": config.ca_file,
            },
        )

    def api_key(self) -> str | None:
        raw = self.read_bytes("api_key")
        return raw.decode().strip() if raw else None

    def set_api_key(self, key: str) -> None:
        self.write_bytes("api_key", key.encode())

    # --- command trust --------------------------------------------------------------------
    def trusted_keys(self) -> dict[str, bytes]:
        data = self.read_json("keys.json", {})
        if not isinstance(data, dict):
            raise StateError(f"{self.path('keys.json')} is damaged")
        return {
            str(kid): b64decode(pub, length=32, field=f"key {kid}") for kid, pub in data.items()
        }

    def set_trusted_keys(self, keys: dict[str, bytes]) -> None:
        self.write_json("keys.json", {kid: b64encode(pub) for kid, pub in keys.items()})

    def seq_hwm(self) -> dict[str, int]:
        data = self.read_json("seq.json", {})
        if not isinstance(data, dict):
            raise StateError(f"{self.path('seq.json')} is damaged")
        return {str(kid): int(seq) for kid, seq in data.items()}

    def set_seq_hwm(self, hwm: dict[str, int]) -> None:
        self.write_json("seq.json", hwm)

    # --- runtime --------------------------------------------------------------------------
    def assignment(self) -> dict[str, Any] | None:
        data = self.read_json("assignment.json", None)
        return data if isinstance(data, dict) else None

    def set_assignment(self, payload: dict[str, Any]) -> None:
        self.write_json("assignment.json", payload)

    def status(self) -> dict[str, Any]:
        data = self.read_json("status.json", {})
        return data if isinstance(data, dict) else {}

    def set_status(self, status: dict[str, Any]) -> None:
        self.write_json("status.json", status)

    def check_permissions(self) -> list[str]:
        """Files readable by others (someone copied them in by hand): what to fix."""
        problems = []
        if self.dir.exists() and stat.S_IMODE(self.dir.stat().st_mode) & 0o077:
            problems.append(f"{self.dir} is accessible by others (chmod 700)")
        for path in self.dir.glob("*") if self.dir.exists() else ():
            if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                problems.append(f"{path} is readable by others (chmod 600)")
        return problems
