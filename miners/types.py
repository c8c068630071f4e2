"""Typed values every driver returns, independent of the firmware that produced them.

Everything here is plain data: the server stores it (``to_dict()`` gives JSON-ready dicts),
the fleet node ships it up the control stream, and the UI decides what to show from
``capabilities``. Units are in the field names (``_ths``, ``_w``, ``_c``, ``_s``) so no caller
has to guess whether a hashrate is in GH/s or TH/s.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class Capability(StrEnum):
    """What a connected device can do beyond reading its status."""

    REBOOT = "reboot"
    BLINK = "blink"
    START_MINING = "start_mining"
    STOP_MINING = "stop_mining"
    POWER_TARGET_WATTS = "power_target_watts"
    POWER_MODE = "power_mode"
    POOLS = "pools"
    COOLING = "cooling"
    LOGS = "logs"
    CHANGE_PASSWORD = "change_password"


class MinerState(StrEnum):
    """What the miner is doing, normalised across firmwares."""

    MINING = "mining"
    DEGRADED = "degraded"
    STARTING = "starting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SLEEPING = "sleeping"
    CURTAILED = "curtailed"
    NO_POOLS = "no_pools"
    ERROR = "error"
    REBOOTING = "rebooting"
    """Restarting: a known rig that answers only part of its API for a while (identification
    reports it in `DeviceInfo.state`; a status call raises `Rebooting`)."""
    UNKNOWN = "unknown"


class Health(StrEnum):
    """One word for dashboards: is somebody needed at this rig?"""

    OK = "ok"
    IDLE = "idle"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class PoolStatus(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    DEAD = "dead"
    UNKNOWN = "unknown"


class PowerMode(StrEnum):
    """Named power targets. Firmwares without a watt-level target map these to work modes."""

    MAXIMUM_HASHRATE = "maximum_hashrate"
    EFFICIENCY = "efficiency"


class CoolingMode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    OFF = "off"


# Chip temperatures (°C) past which a running rig is flagged; stock firmwares throttle
# around 90-95 °C and shut down near 105-110 °C.
HOT_CHIP_C = 90.0
CRITICAL_CHIP_C = 105.0


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    """Dataclasses → dicts, enums → their values, sets → sorted lists; cheap enough to run
    on every poll (no deepcopy, unlike ``dataclasses.asdict``)."""
    if isinstance(value, _PLAIN) and not isinstance(value, Enum):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Credentials:
    """A secret for one device. ``version`` is the server's credential revision; when absent a
    digest of the secret stands in, so a changed password never reuses a cached token."""

    password: str
    username: str | None = None
    version: str | int | None = None

    @property
    def cache_key(self) -> str:
        if self.version is not None:
            return f"v{self.version}"
        raw = f"{self.username or ''}\x00{self.password}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', version={self.version!r})"


@dataclass(slots=True)
class DeviceInfo:
    """Who a device is. ``port`` is the port it was identified on; ``ports`` names the others
    the driver needs (Antminer: ``rpc`` and ``web``); ``scheme`` is what worked (http/https).
    ``state`` is None for a rig that answered normally, ``MinerState.REBOOTING`` for a known
    rig caught rebooting (serial and MAC known, model and firmware maybe not: identify it
    again once it is up)."""

    driver: str
    host: str
    port: int
    make: str
    model: str
    firmware: str | None = None
    serial: str | None = None
    mac: str | None = None
    scheme: str | None = None
    hostname: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    state: MinerState | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _jsonable(self)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceInfo:
        """Inverse of ``to_dict`` (unknown keys ignored), so stored rows can be reconnected."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        state = values.get("state")
        if state is not None:
            try:
                values["state"] = MinerState(state)
            except ValueError:
                values["state"] = None
        return cls(**values)


@dataclass(slots=True)
class Fan:
    slot: int
    rpm: int | None = None
    percent: int | None = None


@dataclass(slots=True)
class Hashboard:
    slot: int
    serial: str | None = None
    ok: bool = True
    state: str | None = None
    hashrate_ths: float | None = None
    ideal_hashrate_ths: float | None = None
    chip_temp_c: float | None = None
    chip_temp_max_c: float | None = None
    board_temp_c: float | None = None
    inlet_temp_c: float | None = None
    outlet_temp_c: float | None = None
    power_w: float | None = None
    chips: int | None = None


@dataclass(slots=True)
class Psu:
    """A power supply. ``slot`` is the rig's own number (ProtoOS: 1-based); ``state`` the
    firmware's word for it where it reports one; ``ok`` False when that state is a fault."""

    slot: int
    serial: str | None = None
    ok: bool = True
    state: str | None = None
    model: str | None = None
    power_w: float | None = None
    input_power_w: float | None = None
    temp_c: float | None = None


@dataclass(slots=True)
class Temperatures:
    chip_avg_c: float | None = None
    chip_max_c: float | None = None
    board_avg_c: float | None = None
    inlet_c: float | None = None
    outlet_c: float | None = None


@dataclass(slots=True)
class Pool:
    url: str
    user: str
    status: PoolStatus = PoolStatus.UNKNOWN
    priority: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    authority_pubkey: str | None = None


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """A pool to write (``set_pools``). Order of the list is priority order.

    ``authority_pubkey`` is a Stratum V2 pool's authority public key (Base58Check, as the pool
    publishes it); firmware refuses a remote ``stratum2+tcp://`` pool without it."""

    url: str
    user: str
    password: str = ""
    name: str = ""
    authority_pubkey: str = ""


@dataclass(slots=True)
class MinerIssue:
    """A problem the firmware reports (ProtoOS ``/errors``) or one we derive (dead board)."""

    message: str
    source: str | None = None
    code: str | None = None
    slot: int | None = None
    timestamp: int | None = None


@dataclass(slots=True)
class MinerStatus:
    health: Health
    state: MinerState
    hashrate_ths: float | None = None
    ideal_hashrate_ths: float | None = None
    power_w: float | None = None
    power_target_w: float | None = None
    power_mode: PowerMode | None = None
    efficiency_jth: float | None = None
    temperatures: Temperatures = field(default_factory=Temperatures)
    fans: list[Fan] = field(default_factory=list)
    hashboards: list[Hashboard] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)
    uptime_s: int | None = None
    default_password_active: bool | None = None
    errors: list[MinerIssue] = field(default_factory=list)
    firmware_state: str | None = None
    psus: list[Psu] = field(default_factory=list)
    hostname: str | None = None
    fetched_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _jsonable(self)
        return result


def efficiency(power_w: float | None, hashrate_ths: float | None) -> float | None:
    """J/TH from power and hashrate, for firmwares that don't report it."""
    if power_w is None or not hashrate_ths:
        return None
    return round(power_w / hashrate_ths, 2)


def assess_health(
    state: MinerState,
    *,
    hashboards: list[Hashboard],
    pools: list[Pool],
    temperatures: Temperatures,
    errors: list[MinerIssue],
    psus: list[Psu] | None = None,
) -> Health:
    """Fold the firmware state and the details into one word, the same way for every driver:
    an intentionally stopped rig is idle, not broken; a running rig with a dead board or PSU,
    no live pool, a hot chip or reported errors needs a look; a firmware error or a chip past
    the shutdown range needs someone now."""
    hottest = temperatures.chip_max_c or temperatures.chip_avg_c
    if state is MinerState.ERROR or (hottest is not None and hottest >= CRITICAL_CHIP_C):
        return Health.CRITICAL
    if state in (MinerState.STOPPED, MinerState.SLEEPING, MinerState.CURTAILED):
        return Health.IDLE
    if state in (MinerState.UNKNOWN, MinerState.REBOOTING):
        return Health.UNKNOWN
    if (
        state in (MinerState.DEGRADED, MinerState.NO_POOLS)
        or any(not hb.ok for hb in hashboards)
        or any(not psu.ok for psu in psus or ())
        or (pools and not any(p.status is PoolStatus.ACTIVE for p in pools))
        or (hottest is not None and hottest >= HOT_CHIP_C)
        or errors
    ):
        return Health.WARNING
    return Health.OK
