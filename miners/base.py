"""The driver interface: a `Driver` recognises a kind of miner, a `Device` talks to one.

Public `Device` methods are implemented once here: they check the declared capability
(raising `Unsupported` before any I/O), bound the whole call — login, retry and all — by the
device's deadline, and delegate to the `_do_*` hooks a driver overrides. So every driver
behaves the same at the edges and no driver can forget a timeout.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from miners.deadline import DEFAULT_TIMEOUT, IDENTIFY_TIMEOUT, within
from miners.errors import MinerError, Rejected, Unsupported
from miners.types import (
    Capability,
    CoolingMode,
    Credentials,
    DeviceInfo,
    MinerStatus,
    PoolConfig,
    PowerMode,
)

T = TypeVar("T")

MAX_POOLS = 3
"""Both ProtoOS and stock Antminer hold exactly three pool slots."""


class Detail(StrEnum):
    """How much `status()` fetches. SUMMARY is the cheap periodic poll (hashrate, power,
    state, pools); FULL adds fans, per-board data, firmware errors, power mode and the
    default-password check at the cost of more requests."""

    SUMMARY = "summary"
    FULL = "full"


class Device(ABC):
    """One connected miner. Cheap to create; I/O happens on the first call."""

    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, info: DeviceInfo, credentials: Credentials | None, timeout: float) -> None:
        self.info = info
        self.credentials = credentials
        self.timeout = timeout

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    async def _run(
        self, capability: Capability | None, what: str, fn: Callable[[], Awaitable[T]]
    ) -> T:
        if capability is not None and capability not in self.capabilities:
            raise Unsupported(f"{self.info.driver} {self.info.model}: {what} is not supported")
        return await within(self.timeout, f"{self.info.host}:{self.info.port} {what}", fn())

    async def status(self, detail: Detail = Detail.FULL) -> MinerStatus:
        return await self._run(None, "status", lambda: self._do_status(detail))

    async def reboot(self) -> None:
        await self._run(Capability.REBOOT, "reboot", self._do_reboot)

    async def blink(self, on: bool = True, seconds: int | None = None) -> None:
        """Turn the locate LED on (for `seconds`, or until turned off when None) or off."""
        await self._run(Capability.BLINK, "blink", lambda: self._do_blink(on, seconds))

    async def start_mining(self) -> None:
        await self._run(Capability.START_MINING, "start mining", self._do_start_mining)

    async def stop_mining(self) -> None:
        await self._run(Capability.STOP_MINING, "stop mining", self._do_stop_mining)

    async def set_power_target(
        self, *, watts: int | None = None, mode: PowerMode | None = None
    ) -> None:
        """Exactly one of `watts` (needs POWER_TARGET_WATTS) or `mode` (needs POWER_MODE)."""
        if (watts is None) == (mode is None):
            raise ValueError("give exactly one of watts= or mode=")
        cap = Capability.POWER_TARGET_WATTS if watts is not None else Capability.POWER_MODE
        await self._run(cap, "set power target", lambda: self._do_set_power_target(watts, mode))

    async def set_pools(self, pools: Sequence[PoolConfig]) -> None:
        """Replace all pools; list order is priority order (first = primary)."""
        wanted = list(pools)

        async def replace() -> None:
            if not 1 <= len(wanted) <= MAX_POOLS:
                raise Rejected(f"between 1 and {MAX_POOLS} pools are required, got {len(wanted)}")
            await self._do_set_pools(wanted)

        await self._run(Capability.POOLS, "set pools", replace)

    async def set_cooling(
        self,
        mode: CoolingMode,
        *,
        speed_percent: int | None = None,
        target_temp_c: float | None = None,
    ) -> None:
        await self._run(
            Capability.COOLING,
            "set cooling",
            lambda: self._do_set_cooling(mode, speed_percent, target_temp_c),
        )

    async def logs(self, lines: int = 100, source: str | None = None) -> list[str]:
        """The last `lines` log lines (from `source`, where the firmware has several)."""
        return await self._run(Capability.LOGS, "logs", lambda: self._do_logs(lines, source))

    async def change_password(self, new_password: str) -> Credentials:
        """Change the rig's password; returns the credentials to store from now on (this
        device switches to them too)."""
        creds = await self._run(
            Capability.CHANGE_PASSWORD,
            "change password",
            lambda: self._do_change_password(new_password),
        )
        self.credentials = creds
        return creds

    async def close(self) -> None:  # noqa: B027 - optional hook, most devices hold nothing
        """Release per-device resources (shared sessions and token caches stay)."""

    @abstractmethod
    async def _do_status(self, detail: Detail) -> MinerStatus: ...

    async def _do_reboot(self) -> None:
        raise NotImplementedError

    async def _do_blink(self, on: bool, seconds: int | None) -> None:
        raise NotImplementedError

    async def _do_start_mining(self) -> None:
        raise NotImplementedError

    async def _do_stop_mining(self) -> None:
        raise NotImplementedError

    async def _do_set_power_target(self, watts: int | None, mode: PowerMode | None) -> None:
        raise NotImplementedError

    async def _do_set_pools(self, pools: list[PoolConfig]) -> None:
        raise NotImplementedError

    async def _do_set_cooling(
        self, mode: CoolingMode, speed_percent: int | None, target_temp_c: float | None
    ) -> None:
        raise NotImplementedError

    async def _do_logs(self, lines: int, source: str | None) -> list[str]:
        raise NotImplementedError

    async def _do_change_password(self, new_password: str) -> Credentials:
        raise NotImplementedError


class Driver(ABC):
    """Recognises one kind of miner and connects to it. One instance per process: it owns
    the shared state (token cache, handles) for every device of its kind."""

    name: ClassVar[str]
    priority: ClassVar[int]
    """Lower wins when two drivers claim the same device (our own drivers beat adapters)."""
    discovery_ports: ClassVar[tuple[int, ...]]
    """Ports worth probing during a scan, most telling first."""
    default_credentials: ClassVar[Credentials | None] = None
    embedded_view_available: ClassVar[bool] = False
    """Whether the single-miner view can show this kind of miner: it reads the driver's native
    API through the proxy, so it exists only for APIs whose payloads the view knows."""

    def claims(self, port: int) -> bool:
        """Whether identify() is worth trying on `port` during a scan."""
        return port in self.discovery_ports

    async def identify(
        self,
        host: str,
        port: int,
        *,
        timeout: float = IDENTIFY_TIMEOUT,
        credentials: Credentials | None = None,
    ) -> DeviceInfo | None:
        """A `DeviceInfo` when host:port is this driver's kind of miner, else None. Never
        raises for "not mine" or "nothing there"; bounded by `timeout`. `credentials` (else
        the defaults) are used only for details some firmwares hide behind a login."""
        try:
            return await within(
                timeout, f"{host}:{port} identify", self._identify(host, port, credentials)
            )
        except MinerError:
            return None

    async def same_device(
        self, host: str, port: int, known: DeviceInfo, *, timeout: float = IDENTIFY_TIMEOUT
    ) -> DeviceInfo | None:
        """During a scan: `known` (this driver's answer on another port of `host`) as seen on
        `port`, when one cheap read proves the same device answers there; None means "not
        proven" and the scanner identifies `port` in full. By default nothing is proven."""
        return None

    @abstractmethod
    async def _identify(
        self, host: str, port: int, credentials: Credentials | None
    ) -> DeviceInfo | None:
        """The driver's checks; may raise any `MinerError` (it means "not identified")."""

    @abstractmethod
    def connect(
        self,
        info: DeviceInfo,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Device:
        """A `Device` for a previously identified miner (no I/O here)."""


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty dict: firmware replies are untrusted."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def num(value: Any) -> float | None:
    """A number from firmware JSON that may send numbers as strings ("13,500.25"), bools,
    null, NaN or garbage."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.replace(",", "").strip())
        except ValueError:
            return None
    else:
        return None
    return result if result == result and abs(result) != float("inf") else None


def integer(value: Any) -> int | None:
    result = num(value)
    return int(result) if result is not None else None


async def gather_or_fail(*coros: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run `coros` concurrently. The first failure cancels the others and is raised as
    itself (not wrapped in an ExceptionGroup), so callers keep catching `MinerError`."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]
