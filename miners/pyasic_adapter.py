"""Every other brand (Whatsminer, Braiins, VNish, LuxOS, Avalon, Bitaxe, ePIC…) through
pyasic-rs, behind our interface.

The library is used with care because of what it does on its own: `get_data()` never raises
(an offline rig or a wrong password is a snapshot of `None`s — we turn that into
`Unreachable`/`AuthFailed`), it has no deadline of its own (a dead rig took ~40 s — ours
applies), two handles to one rig log each other out (we keep one per rig), and the
interpreter can abort at exit after loading it (processes that load it exit via
`os._exit`; tests run it in a subprocess). It is imported lazily so importing `miners`
never loads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar

from miners.base import Detail, Device, Driver
from miners.deadline import DEFAULT_TIMEOUT
from miners.errors import AuthFailed, BadResponse, Rejected, Unreachable, Unsupported
from miners.types import (
    Capability,
    CoolingMode,
    Credentials,
    DeviceInfo,
    Fan,
    Hashboard,
    MinerIssue,
    MinerState,
    MinerStatus,
    Pool,
    PoolConfig,
    PoolStatus,
    PowerMode,
    Temperatures,
    assess_health,
    efficiency,
)

T = TypeVar("T")

SUPPORTS = {
    Capability.REBOOT: "supports_restart",
    Capability.BLINK: "supports_set_fault_light",
    Capability.START_MINING: "supports_resume",
    Capability.STOP_MINING: "supports_pause",
    Capability.POWER_TARGET_WATTS: "supports_set_power_limit",
    Capability.POWER_MODE: "supports_tuning_config",
    Capability.POOLS: "supports_pools_config",
    Capability.COOLING: "supports_fan_config",
    Capability.LOGS: "supports_read_logs",
    Capability.CHANGE_PASSWORD: "supports_change_password",
}
STATES = {
    "Mining": MinerState.MINING,
    "Stable": MinerState.MINING,
    "Tuning": MinerState.MINING,
    "DegradedMining": MinerState.DEGRADED,
    "Initializing": MinerState.STARTING,
    "Starting": MinerState.STARTING,
    "Restarting": MinerState.STARTING,
    "Stopping": MinerState.STOPPING,
    "Stopped": MinerState.STOPPED,
    "Paused": MinerState.STOPPED,
    "Idling": MinerState.SLEEPING,
    "Suspended": MinerState.CURTAILED,
    "Restricted": MinerState.CURTAILED,
    "Error": MinerState.ERROR,
}


DISCOVERY_FIRMWARES = (
    "AntMiner Stock",
    "Braiins",
    "VNish",
    "LuxOS",
    "Marathon",
    "WhatsMiner Stock",
    "AvalonMiner Stock",
    "Auradine Stock",
    "Goldshell Stock",
    "Bitaxe Stock",
    "FutureBit Stock",
    "Elphapex Stock",
    "VolcMiner Stock",
    "SealMiner Stock",
    "Proto Stock",
)
"""pyasic-rs display names whose identification may need a login (stock Antminer asks for
``/cgi-bin/miner_type.cgi`` behind digest auth): our credentials are offered to each."""


def _factory(credentials: Credentials | None) -> Any:
    """A MinerFactory that identifies with `credentials` (else the library's defaults)."""
    from pyasic_rs import MinerFactory

    factory = MinerFactory()
    if credentials is None:
        return factory
    for name in DISCOVERY_FIRMWARES:
        try:
            factory = factory.with_firmware_discovery_auth(
                name, credentials.username or "root", credentials.password
            )
        except ValueError:
            continue  # name not registered in this pyasic-rs version
    return factory


def capabilities_of(miner: Any) -> frozenset[Capability]:
    return frozenset(cap for cap, attr in SUPPORTS.items() if getattr(miner, attr, False))


async def _lib_call(aw: Awaitable[T], what: str) -> T:
    """Map the library's exceptions into ours."""
    try:
        return await aw
    except ConnectionError as exc:
        raise Unreachable(f"{what}: {exc}") from exc
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        if "support" in str(exc).lower():
            raise Unsupported(f"{what}: {exc}") from exc
        raise BadResponse(f"{what}: {exc}") from exc


async def _ok(aw: Awaitable[bool], what: str) -> None:
    if not await _lib_call(aw, what):
        raise Rejected(f"{what}: the firmware refused (pyasic-rs returned False)")


def _ths(hashrate: Any) -> float | None:
    if hashrate is None:
        return None
    from pyasic_rs.data import HashRateUnit

    return round(float(hashrate.as_unit(HashRateUnit.TH).value), 4)


def _pool_url(url: Any) -> str:
    if url is None:
        return ""
    scheme = {
        "StratumV1": "stratum+tcp",
        "StratumV1SSL": "stratum+ssl",
        "StratumV2": "stratum2+tcp",
    }
    return f"{scheme.get(str(url.scheme), 'stratum+tcp')}://{url.host}:{url.port}"


def is_empty(data: Any) -> bool:
    """The library's "I got nothing" snapshot: every reading missing."""
    return (
        data.hashrate is None
        and data.wattage is None
        and data.mac is None
        and data.uptime is None
        and not data.pools
        and not data.hashboards
        and not data.fans
    )


def parse_data(data: Any) -> MinerStatus:
    """Our `MinerStatus` from a pyasic-rs `MinerData`."""
    boards = [
        Hashboard(
            slot=b.position,
            serial=b.serial_number,
            ok=bool(b.active) if b.active is not None else True,
            hashrate_ths=_ths(b.hashrate),
            ideal_hashrate_ths=_ths(b.expected_hashrate),
            board_temp_c=b.board_temperature,
            inlet_temp_c=b.inlet_chip_temperature,
            outlet_temp_c=b.outlet_chip_temperature,
            chips=b.working_chips,
        )
        for b in data.hashboards
    ]
    pools = [
        Pool(
            url=_pool_url(p.url),
            user=p.user or "",
            status=(
                PoolStatus.ACTIVE
                if p.active
                else PoolStatus.DEAD
                if p.alive is False
                else PoolStatus.IDLE
                if p.alive
                else PoolStatus.UNKNOWN
            ),
            priority=p.position,
            accepted=p.accepted_shares,
            rejected=p.rejected_shares,
        )
        for group in data.pools
        for p in group.pools
    ]
    hashrate = _ths(data.hashrate)
    state_name = str(data.operating_state).split(".")[-1] if data.operating_state else None
    state = STATES.get(
        state_name or "", MinerState.MINING if data.is_mining else MinerState.STOPPED
    )
    temps = Temperatures(
        chip_avg_c=data.average_temperature,
        inlet_c=min((b.inlet_temp_c for b in boards if b.inlet_temp_c), default=None),
        outlet_c=max((b.outlet_temp_c for b in boards if b.outlet_temp_c), default=None),
    )
    issues = [MinerIssue(m.message, str(m.severity), str(m.code)) for m in data.messages]
    target = data.tuning_target
    return MinerStatus(
        health=assess_health(
            state, hashboards=boards, pools=pools, temperatures=temps, errors=issues
        ),
        state=state,
        firmware_state=state_name,
        hashrate_ths=hashrate,
        ideal_hashrate_ths=_ths(data.expected_hashrate),
        power_w=data.wattage,
        power_target_w=getattr(target, "watts", None) if target is not None else None,
        efficiency_jth=data.efficiency or efficiency(data.wattage, hashrate),
        temperatures=temps,
        fans=[
            Fan(slot=f.position, rpm=int(f.rpm) if f.rpm is not None else None) for f in data.fans
        ],
        hashboards=boards,
        pools=pools,
        uptime_s=int(data.uptime.total_seconds()) if data.uptime is not None else None,
        errors=issues,
    )


async def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class PyasicDevice(Device):
    def __init__(
        self,
        info: DeviceInfo,
        driver: PyasicDriver,
        credentials: Credentials | None,
        timeout: float,
    ) -> None:
        super().__init__(info, credentials, timeout)
        self.driver = driver
        self.capabilities = frozenset(Capability(c) for c in info.extra.get("capabilities", ()))

    async def _miner(self) -> Any:
        return await self.driver.handle(self.info.host, self.credentials)

    async def _do_status(self, detail: Detail) -> MinerStatus:
        from pyasic_rs.data import DataField

        miner = await self._miner()
        exclude = (
            [DataField.Chips] if detail is Detail.FULL else [DataField.Chips, DataField.Messages]
        )
        data = await _lib_call(miner.get_data(exclude=exclude), "get_data")
        if is_empty(data):
            if await _port_open(self.info.host, self.info.port):
                raise AuthFailed("the rig answers but returned no data (credentials?)")
            raise Unreachable(f"{self.info.host}: no data from the rig")
        return parse_data(data)

    async def _do_reboot(self) -> None:
        await _ok((await self._miner()).restart(), "restart")

    async def _do_blink(self, on: bool, seconds: int | None) -> None:
        await _ok((await self._miner()).set_fault_light(on), "fault light")

    async def _do_start_mining(self) -> None:
        await _ok((await self._miner()).resume(), "resume")

    async def _do_stop_mining(self) -> None:
        await _ok((await self._miner()).pause(), "pause")

    async def _do_set_power_target(self, watts: int | None, mode: PowerMode | None) -> None:
        miner = await self._miner()
        if watts is not None:
            await _ok(miner.set_power_limit(float(watts)), "power limit")
            return
        from pyasic_rs import TuningConfig
        from pyasic_rs.data import MiningMode

        target = MiningMode.Low if mode is PowerMode.EFFICIENCY else MiningMode.Normal
        await _ok(miner.set_tuning_config(TuningConfig.mode(target)), "tuning mode")

    async def _do_set_pools(self, pools: list[PoolConfig]) -> None:
        from pyasic_rs import Pool as LibPool
        from pyasic_rs import PoolGroup

        group = PoolGroup(
            name="default",
            quota=1,
            pools=[LibPool(url=p.url, username=p.user, password=p.password) for p in pools],
        )
        await _ok((await self._miner()).set_pools_config([group]), "pools")

    async def _do_set_cooling(
        self, mode: CoolingMode, speed_percent: int | None, target_temp_c: float | None
    ) -> None:
        from pyasic_rs import FanConfig

        if mode is CoolingMode.MANUAL and speed_percent is not None:
            config = FanConfig.manual(int(speed_percent))
        elif mode is CoolingMode.AUTO and target_temp_c is not None:
            config = FanConfig.auto(float(target_temp_c))
        else:
            raise Unsupported("via pyasic-rs: manual needs a speed, auto a target temperature")
        await _ok((await self._miner()).set_fan_config(config), "fan config")

    async def _do_logs(self, lines: int, source: str | None) -> list[str]:
        text = await _lib_call((await self._miner()).read_logs(), "read_logs")
        return (text or "").splitlines()[-max(1, lines) :]

    async def _do_change_password(self, new_password: str) -> Credentials:
        await _ok((await self._miner()).change_password(new_password), "change password")
        username = self.credentials.username if self.credentials else None
        self.driver.forget(self.info.host)  # the next call logs in with the new password
        return Credentials(password=new_password, username=username)


class PyasicDriver(Driver):
    name = "pyasic"
    priority = 100
    discovery_ports = (80, 4028)
    """pyasic-rs picks its own ports (80 for web firmwares, 4028 for RPC): it can only claim
    devices on those."""
    default_credentials: ClassVar[Credentials | None] = None

    def __init__(self) -> None:
        self._handles: dict[str, tuple[Any, str | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def handle(self, host: str, credentials: Credentials | None) -> Any:
        """The one library handle for `host` (a second one would log the first out)."""
        key = credentials.cache_key if credentials else None
        async with self._locks.setdefault(host, asyncio.Lock()):
            cached = self._handles.get(host)
            if cached is not None and cached[1] == key:
                return cached[0]
            miner = await _lib_call(_factory(credentials).get_miner(host), f"{host} get_miner")
            if miner is None:
                raise Unreachable(f"{host}: no miner pyasic-rs supports answered")
            if credentials is not None:
                miner.set_auth(credentials.username or "root", credentials.password)
            self._handles[host] = (miner, key)
            return miner

    def forget(self, host: str) -> None:
        self._handles.pop(host, None)

    async def _identify(
        self, host: str, port: int, credentials: Credentials | None
    ) -> DeviceInfo | None:
        # The library finds a rig by host alone (on ports of its choosing): asked about a
        # port that refuses connections, it would still claim the host. Only what actually
        # listens on the port asked about is ours to identify.
        if not await _port_open(host, port):
            return None
        miner = await self.handle(host, credentials)
        mac, serial, version = await asyncio.gather(
            _lib_call(miner.get_mac(), "mac"),
            _lib_call(miner.get_serial_number(), "serial"),
            _lib_call(miner.get_firmware_version(), "firmware"),
        )
        return DeviceInfo(
            driver=self.name,
            host=host,
            port=port,
            make=str(miner.make),
            model=str(miner.model),
            firmware=version or str(miner.firmware),
            serial=serial,
            mac=mac,
            extra={
                "firmware_family": str(miner.firmware),
                "capabilities": sorted(capabilities_of(miner)),
            },
        )

    def connect(
        self,
        info: DeviceInfo,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PyasicDevice:
        return PyasicDevice(info, self, credentials, timeout)
