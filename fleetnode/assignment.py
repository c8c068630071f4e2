"""The miners the server assigned to this node (``assign_miners``), checked and typed.

Credentials arrive encrypted under the node key (``protocol.encrypt_credential``) and stay
encrypted on disk; they are opened in memory when a miner is dialled. The plaintext is UTF-8
JSON ``{"username": str | null, "password": str}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fleetnode.protocol import ProtocolError, decrypt_credential
from miners import Credentials, DeviceInfo

log = logging.getLogger("fleetnode.assignment")

MAX_MINERS = 10_000
MIN_POLL_S = 5.0
MAX_POLL_S = 3600.0
DEFAULT_POLL_S = 30.0
MAX_HOST_LENGTH = 253


class AssignmentError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AssignedMiner:
    miner_id: int
    info: DeviceInfo
    credential: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Assignment:
    miners: dict[int, AssignedMiner]
    poll_interval_s: float
    version: str = ""  # the server's digest of this set, named in the next hello

    @classmethod
    def empty(cls) -> Assignment:
        return cls({}, DEFAULT_POLL_S)


def _miner(entry: Any, known_drivers: set[str]) -> AssignedMiner:
    if not isinstance(entry, dict):
        raise AssignmentError("each miner is an object")
    miner_id, host, port, driver = (entry.get(k) for k in ("id", "host", "port", "driver"))
    if not isinstance(miner_id, int) or isinstance(miner_id, bool) or miner_id < 1:
        raise AssignmentError("miner id is not a positive integer")
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST_LENGTH:
        raise AssignmentError(f"miner {miner_id}: host missing or too long")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise AssignmentError(f"miner {miner_id}: port is not 1-65535")
    if not isinstance(driver, str) or driver not in known_drivers:
        raise AssignmentError(f"miner {miner_id}: unknown driver {str(driver)[:40]!r}")
    extra = entry.get("device_info") or {}
    credential = entry.get("credential")
    if not isinstance(extra, dict):
        raise AssignmentError(f"miner {miner_id}: device_info is not an object")
    if credential is not None and not isinstance(credential, dict):
        raise AssignmentError(f"miner {miner_id}: credential is not an object or null")
    fields = {"make": "", "model": "", **extra, "driver": driver, "host": host, "port": port}
    try:
        info = DeviceInfo.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise AssignmentError(f"miner {miner_id}: device_info: {exc}") from None
    if not isinstance(info.ports, dict) or not isinstance(info.extra, dict):
        raise AssignmentError(f"miner {miner_id}: device_info ports/extra are not objects")
    return AssignedMiner(miner_id, info, credential)


def parse_assignment(payload: dict[str, Any], known_drivers: set[str]) -> Assignment:
    entries = payload.get("miners")
    if not isinstance(entries, list):
        raise AssignmentError("miners is not a list")
    if len(entries) > MAX_MINERS:
        raise AssignmentError(f"at most {MAX_MINERS} miners per node")
    interval = payload.get("poll_interval_s", DEFAULT_POLL_S)
    if not isinstance(interval, int | float) or isinstance(interval, bool):
        raise AssignmentError("poll_interval_s is not a number")
    miners: dict[int, AssignedMiner] = {}
    for entry in entries:
        miner = _miner(entry, known_drivers)
        miners[miner.miner_id] = miner
    version = payload.get("version", "")
    if not isinstance(version, str) or len(version) > 64:
        raise AssignmentError("version is not a short string")
    return Assignment(miners, min(MAX_POLL_S, max(MIN_POLL_S, float(interval))), version)


def open_credentials(
    miner: AssignedMiner, *, node_key: bytes | None, node_id: int
) -> Credentials | None:
    """The miner's credentials, or None (no credential: the driver's defaults). Raises
    ``AssignmentError`` when there is one the node can't open."""
    if miner.credential is None:
        return None
    if node_key is None:
        raise AssignmentError("no node key yet: the miner's credential can't be opened")
    try:
        plain = decrypt_credential(node_key, node_id, miner.miner_id, miner.credential)
        data = json.loads(plain.decode("utf-8"))
    except (ProtocolError, UnicodeDecodeError, ValueError) as exc:
        raise AssignmentError(f"credential of miner {miner.miner_id}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("password"), str):
        raise AssignmentError(f"credential of miner {miner.miner_id} has no password")
    username = data.get("username")
    return Credentials(
        password=data["password"],
        username=username if isinstance(username, str) and username else None,
        version=str(miner.credential.get("v", "")) or None,
    )
