"""ProtoOS (Proto rigs): JSON REST under /api/v1, bearer tokens, https-then-http.

See docs/miners.md for the endpoint-by-endpoint mapping. Reads that are optional for a
status (fans, errors, per-board telemetry, PSUs) never fail the whole status when a firmware
version lacks them; the core `/mining` read does. Parsing accepts both what the MDK spec says
and what rigs in the field send (miner-apis.md §1: fan `speed_percentage`, 1-based slots,
PSU faults only in `/power-supplies`, `os.hostname`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine
from typing import Any, ClassVar
from urllib.parse import urlsplit

from miners.base import Detail, Device, Driver, as_dict, as_list, gather_or_fail, integer, num
from miners.deadline import DEFAULT_TIMEOUT, IDENTIFY_TIMEOUT, within
from miners.errors import (
    BadResponse,
    MinerError,
    Rebooting,
    Rejected,
    Unreachable,
    Unsupported,
)
from miners.http import HttpClient, is_refused, shared_http
from miners.protoos_client import FACTORY_PASSWORD, ProtoOSClient
from miners.tokens import TokenCache
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
    Psu,
    Temperatures,
    assess_health,
    efficiency,
)

STATES = {
    "Mining": MinerState.MINING,
    "DegradedMining": MinerState.DEGRADED,
    "PoweringOn": MinerState.STARTING,
    "Uninitialized": MinerState.STARTING,
    "PoweringOff": MinerState.STOPPING,
    "Stopped": MinerState.STOPPED,
    "Curtailed": MinerState.CURTAILED,
    "NoPools": MinerState.NO_POOLS,
    "Error": MinerState.ERROR,
}
NOT_HASHING = frozenset(
    {MinerState.STOPPED, MinerState.SLEEPING, MinerState.CURTAILED, MinerState.NO_POOLS}
)
POOL_STATES = {
    "Active": PoolStatus.ACTIVE,
    "Idle": PoolStatus.IDLE,
    "Dead": PoolStatus.DEAD,
}
PERFORMANCE_MODES = {
    PowerMode.MAXIMUM_HASHRATE: "MaximumHashrate",
    PowerMode.EFFICIENCY: "Efficiency",
}
COOLING_MODES = {CoolingMode.AUTO: "Auto", CoolingMode.MANUAL: "Manual", CoolingMode.OFF: "Off"}
LOG_SOURCES = ("os", "pool_sw", "miner_sw", "miner_web_server")
MAX_LOG_LINES = 10_000
HASHRATE_UNITS = {"TH/s": 1.0, "GH/s": 1e-3, "PH/s": 1e3, "MH/s": 1e-6}
POOL_SCHEMES = ("stratum+tcp", "stratum2+tcp")
PSU_FAULT_WORDS = ("error", "fault", "fail")
"""A PSU `state` containing one of these is a fault (field firmware says "Error")."""


def _ths(metric: Any) -> float | None:
    """A telemetry ``{value, unit}`` hashrate in TH/s."""
    metric = as_dict(metric)
    value = num(metric.get("value"))
    scale = HASHRATE_UNITS.get(str(metric.get("unit", "TH/s")), 1.0)
    return round(value * scale, 4) if value is not None else None


def _ghs_to_ths(value: Any) -> float | None:
    ghs = num(value)
    return round(ghs / 1000, 4) if ghs is not None else None


async def _optional(coro: Coroutine[Any, Any, Any]) -> Any:
    """A detail read that may be missing on some firmware versions: None instead of failing
    the status. Auth and reachability errors still propagate."""
    try:
        return await coro
    except (Unsupported, BadResponse, Rejected):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_pools(body: Any) -> list[Pool]:
    pools = []
    for raw in as_list(as_dict(body).get("pools")):
        raw = as_dict(raw)
        pools.append(
            Pool(
                url=str(raw.get("url") or ""),
                user=str(raw.get("user") or raw.get("username") or ""),
                status=POOL_STATES.get(str(raw.get("status")), PoolStatus.UNKNOWN),
                priority=integer(raw.get("priority")),
                accepted=integer(raw.get("accepted")),
                rejected=integer(raw.get("rejected")),
                authority_pubkey=_text(raw.get("v2_authority_pubkey")),
            )
        )
    pools.sort(key=lambda p: p.priority if p.priority is not None else 99)
    return pools


def check_pool_url(url: str) -> None:
    """`stratum+tcp://host[:port]` (Stratum V1) or `stratum2+tcp://host[:port]` (V2), as
    the firmware accepts them; anything else is `Rejected` before it reaches the rig."""
    parts = urlsplit(url)
    if parts.scheme not in POOL_SCHEMES or not parts.hostname:
        raise Rejected(
            f"pool url must be stratum+tcp://host[:port] or stratum2+tcp://host[:port], got {url!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise Rejected(f"pool url {url!r} has an invalid port") from None
    if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Rejected(f"pool url {url!r} has an invalid port or a path")


def board_slots(hashboards_body: Any) -> dict[str, int]:
    """Hashboard serial -> the rig's own slot number (1-based) from `/hashboards`."""
    slots: dict[str, int] = {}
    for raw in map(as_dict, as_list(as_dict(hashboards_body).get("hashboards-info"))):
        serial, slot = raw.get("hb_sn"), integer(raw.get("slot"))
        if isinstance(serial, str) and slot is not None:
            slots[serial] = slot
    return slots


def parse_hashboards(
    telemetry: Any, mining: bool, slots: dict[str, int] | None = None
) -> list[Hashboard]:
    """Per-board figures from `/telemetry`. Telemetry numbers boards by a 0-based `index`;
    the rig's slots (as printed on the chassis, and in `/hashboards` and `/errors`) count
    from 1: the slot comes from `/hashboards` by serial, else it is `index + 1`."""
    boards: list[Hashboard] = []
    for raw in as_list(as_dict(telemetry).get("hashboards")):
        raw = as_dict(raw)
        temps = as_dict(raw.get("temperature"))
        # `level=asic`: one temperature per chip; the board's `temperature` is its PCB sensors
        asic_temps = as_dict(as_dict(raw.get("asics")).get("temperature"))
        chip_temps = [t for t in map(num, as_list(asic_temps.get("values"))) if t is not None]
        hashrate = _ths(raw.get("hashrate"))
        serial = _text(raw.get("serial_number"))
        index = integer(raw.get("index"))
        slot = (slots or {}).get(serial or "")
        if slot is None:
            slot = (index if index is not None else len(boards)) + 1
        boards.append(
            Hashboard(
                slot=slot,
                serial=serial,
                ok=not mining or bool(hashrate),
                hashrate_ths=hashrate,
                chip_temp_c=round(sum(chip_temps) / len(chip_temps), 1) if chip_temps else None,
                chip_temp_max_c=max(chip_temps, default=None),
                chips=len(chip_temps) or None,
                board_temp_c=num(temps.get("average")),
                inlet_temp_c=num(temps.get("inlet")),
                outlet_temp_c=num(temps.get("outlet")),
                power_w=num(as_dict(raw.get("power")).get("value")),
            )
        )
    return boards


def _psu_watts(power: dict[str, Any], key: str) -> float | None:
    milliwatts = num(power.get(key))
    return round(milliwatts / 1000, 1) if milliwatts is not None else None


def parse_psus(body: Any) -> list[Psu]:
    """PSUs from `/power-supplies` (`psus_info`) or `/hardware/psus` (`psus-info`). Slots are
    the rig's own (1-based). Field firmware reports a failed PSU only here, as `state`."""
    body = as_dict(body)
    raw_list = body.get("psus_info", body.get("psus-info"))
    psus = []
    for i, raw in enumerate(map(as_dict, as_list(raw_list)), start=1):
        state = _text(raw.get("state")) or _text(raw.get("status"))
        power = as_dict(raw.get("power"))
        temps = {
            str(t.get("temperature_type")): num(t.get("temperature_c"))
            for t in map(as_dict, as_list(raw.get("temperatures")))
        }
        psus.append(
            Psu(
                slot=integer(raw.get("slot")) or i,
                serial=_text(raw.get("psu_sn")),
                ok=state is None or not any(w in state.lower() for w in PSU_FAULT_WORDS),
                state=state,
                model=_text(raw.get("model")),
                power_w=_psu_watts(power, "output_power_mw"),
                input_power_w=_psu_watts(power, "input_power_mw"),
                temp_c=temps.get("hotspot"),
            )
        )
    return psus


def default_password_state(
    system_status: Any, *, factory_password: bool, gate_seen: bool
) -> bool | None:
    """Whether the factory password is still active: `/system/status` says `onboarded: false`
    or `password_set: false` (spec 1.8.2 dropped `default_password_active`; a rig with a
    per-unit label password shows `{onboarded: false, password_set: true}`), we log in with
    `proto`, or a write was refused with 403 DEFAULT_PASSWORD_ACTIVE. None when nothing was
    checked."""
    if gate_seen:
        return True
    if system_status is None:
        return None
    status = as_dict(system_status)
    return (
        status.get("onboarded") is False or status.get("password_set") is False or factory_password
    )


def parse_status(
    mining_body: Any,
    pools_body: Any,
    *,
    telemetry: Any = None,
    cooling: Any = None,
    errors: Any = None,
    system_status: Any = None,
    target: Any = None,
    factory_password: bool = False,
    hashboards_info: Any = None,
    power_supplies: Any = None,
    network: Any = None,
    gate_seen: bool = False,
    hostname: str | None = None,
) -> MinerStatus:
    """A `MinerStatus` from the replies of one poll (None for the reads not made).
    `gate_seen`: a write was refused with DEFAULT_PASSWORD_ACTIVE; `hostname`: the one known
    from identification, used when `/network` wasn't read."""
    stats = as_dict(as_dict(mining_body).get("mining-status"))
    firmware_state = stats.get("status") if mining_body is not None else "NoStatistics"
    state = STATES.get(str(firmware_state), MinerState.UNKNOWN)
    if mining_body is None:
        state = MinerState.STARTING  # 204: the miner has not produced statistics yet
    issues = [
        MinerIssue(
            message=str(e.get("message") or e.get("error_code") or "error"),
            source=e.get("source"),
            code=e.get("error_code"),
            slot=integer(e.get("slot")),
            timestamp=integer(e.get("timestamp")),
        )
        for e in map(as_dict, as_list(errors))
    ]
    mining = state in (MinerState.MINING, MinerState.DEGRADED)
    installed, running = (
        integer(stats.get("hashboards_installed")),
        integer(stats.get("hashboards_mining")),
    )
    if mining and installed is not None and running is not None and running < installed:
        issues.append(
            MinerIssue(f"{running} of {installed} hashboards mining", "hashboard", "HB_NOT_MINING")
        )
    hashboards = parse_hashboards(telemetry, mining, board_slots(hashboards_info))
    psus = parse_psus(power_supplies)
    reported = {(i.source, i.slot) for i in issues}
    for psu in psus:
        if not psu.ok and ("psu", psu.slot) not in reported:
            issues.append(
                MinerIssue(
                    f"PSU {psu.slot} state {psu.state}"
                    + (f" ({psu.serial})" if psu.serial else ""),
                    "psu",
                    "PSU_FAULT",
                    psu.slot,
                )
            )
    temps = Temperatures(
        chip_avg_c=num(stats.get("average_asic_temp_c")),
        board_avg_c=num(stats.get("average_hb_temp_c")),
    )
    if hashboards:
        temps.inlet_c = min((hb.inlet_temp_c for hb in hashboards if hb.inlet_temp_c), default=None)
        temps.outlet_c = max(
            (hb.outlet_temp_c for hb in hashboards if hb.outlet_temp_c), default=None
        )
        temps.chip_max_c = max(
            (hb.chip_temp_max_c for hb in hashboards if hb.chip_temp_max_c is not None),
            default=None,
        )
        board_chips = [hb.chip_temp_c for hb in hashboards if hb.chip_temp_c is not None]
        if temps.chip_avg_c is None and board_chips:
            temps.chip_avg_c = round(sum(board_chips) / len(board_chips), 1)
    cooling_status = as_dict(as_dict(cooling).get("cooling-status"))
    fans = [
        Fan(
            slot=integer(f.get("slot")) or i,
            rpm=integer(f.get("rpm")),
            # the spec says `percentage`, rigs in the field send `speed_percentage`
            percent=integer(f["percentage"] if "percentage" in f else f.get("speed_percentage")),
        )
        for i, f in enumerate(map(as_dict, as_list(cooling_status.get("fans"))), start=1)
    ]
    pools = parse_pools(pools_body)
    # `average_hashrate_ghs` averages the whole mining run (hash count / run time): it lags a
    # dead board or a thermal throttle for hours. Telemetry (FULL) has the current figure; a
    # rig that says it isn't hashing (state, or no board mining) hashes nothing, whatever its
    # run average still says.
    hashrate = None
    if mining_body is not None:  # 204: no figures at all yet
        hashrate = _ths(as_dict(as_dict(telemetry).get("miner")).get("hashrate"))
    if hashrate is None:
        hashrate = _ghs_to_ths(stats.get("average_hashrate_ghs"))
    if hashrate and (state in NOT_HASHING or running == 0):
        hashrate = 0.0
    power = num(stats.get("power_usage_watts"))
    target_body = as_dict(target)
    modes = {v: k for k, v in PERFORMANCE_MODES.items()}
    return MinerStatus(
        health=assess_health(
            state,
            hashboards=hashboards,
            pools=pools,
            temperatures=temps,
            errors=issues,
            psus=psus,
        ),
        state=state,
        firmware_state=str(firmware_state) if firmware_state is not None else None,
        hashrate_ths=hashrate,
        ideal_hashrate_ths=_ghs_to_ths(stats.get("ideal_hashrate_ghs")),
        power_w=power,
        power_target_w=num(stats.get("power_target_watts"))
        or num(target_body.get("power_target_watts")),
        power_mode=modes.get(str(target_body.get("performance_mode"))),
        efficiency_jth=num(stats.get("power_efficiency_jth")) or efficiency(power, hashrate),
        temperatures=temps,
        fans=fans,
        hashboards=hashboards,
        pools=pools,
        uptime_s=integer(stats.get("reboot_uptime_s")) or integer(stats.get("mining_uptime_s")),
        default_password_active=default_password_state(
            system_status, factory_password=factory_password, gate_seen=gate_seen
        ),
        errors=issues,
        psus=psus,
        hostname=_text(as_dict(as_dict(network).get("network-info")).get("hostname")) or hostname,
    )


class ProtoOSDevice(Device):
    capabilities = frozenset(Capability)

    def __init__(
        self,
        info: DeviceInfo,
        client: ProtoOSClient,
        credentials: Credentials | None,
        timeout: float,
    ) -> None:
        super().__init__(info, credentials, timeout)
        self.client = client

    async def _do_status(self, detail: Detail) -> MinerStatus:
        try:
            return await self._read_status(detail)
        except Rebooting:
            raise
        except Unreachable as exc:
            raise await self._rebooting_or(exc) from exc

    async def _rebooting_or(self, exc: Unreachable) -> Unreachable:
        """A rebooting rig drops the connection on most routes but still answers its public
        identity: `Rebooting` when `/pairing/info` names this rig, else `exc` itself."""
        if is_refused(exc):
            return exc
        try:
            pairing = as_dict(await self.client.get_json("/pairing/info", auth=False))
        except (Unreachable, BadResponse, Unsupported, Rejected):
            return exc
        serial = pairing.get("cb_sn")
        if not isinstance(serial, str) or (self.info.serial and serial != self.info.serial):
            return exc
        return Rebooting(
            f"{self.info.host}:{self.info.port} is rebooting (identity answers, status "
            f"doesn't: {exc.message})",
            code=exc.code,
        )

    async def _read_status(self, detail: Detail) -> MinerStatus:
        c = self.client
        if detail is Detail.SUMMARY:
            mining, pools = await gather_or_fail(c.get_json("/mining"), c.get_json("/pools"))
            return parse_status(
                mining, pools, gate_seen=c.default_password_gate, hostname=self.info.hostname
            )
        (
            mining,
            pools,
            telemetry,
            cooling,
            errors,
            system_status,
            target,
            hashboards,
            power_supplies,
            network,
        ) = await gather_or_fail(
            c.get_json("/mining"),
            c.get_json("/pools"),
            _optional(c.get_json("/telemetry", params={"level": "miner,hashboard,asic"})),
            _optional(c.get_json("/cooling")),
            _optional(c.get_json("/errors")),
            _optional(c.get_json("/system/status", auth=False)),
            _optional(c.get_json("/mining/target")),
            _optional(c.get_json("/hashboards", auth=False)),
            _optional(c.get_json("/power-supplies", auth=False)),
            _optional(c.get_json("/network", auth=False)),
        )
        return parse_status(
            mining,
            pools,
            telemetry=telemetry,
            cooling=cooling,
            errors=errors,
            system_status=system_status,
            target=target,
            factory_password=c.credentials.password == FACTORY_PASSWORD,
            hashboards_info=hashboards,
            power_supplies=power_supplies,
            network=network,
            gate_seen=c.default_password_gate,
            hostname=self.info.hostname,
        )

    async def _do_reboot(self) -> None:
        await self.client.request("POST", "/system/reboot")

    async def _do_blink(self, on: bool, seconds: int | None) -> None:
        params = {"led_on_time": str(seconds or 0), "enable": "true" if on else "false"}
        await self.client.request("POST", "/system/locate", params=params)

    async def _do_start_mining(self) -> None:
        await self.client.request("POST", "/mining/start")

    async def _do_stop_mining(self) -> None:
        await self.client.request("POST", "/mining/stop")

    async def _do_set_power_target(self, watts: int | None, mode: PowerMode | None) -> None:
        body: dict[str, Any] = {}
        if watts is not None:
            body["power_target_watts"] = int(watts)
        if mode is not None:
            body["performance_mode"] = PERFORMANCE_MODES[mode]
        await self.client.request("PUT", "/mining/target", json_body=body)

    async def _do_set_pools(self, pools: list[PoolConfig]) -> None:
        for p in pools:
            check_pool_url(p.url)
        body = [
            {
                "url": p.url,
                "username": p.user,
                "password": p.password,
                "priority": i,
                **({"name": p.name} if p.name else {}),
                **({"v2_authority_pubkey": p.authority_pubkey} if p.authority_pubkey else {}),
            }
            for i, p in enumerate(pools)
        ]
        await self.client.request("POST", "/pools", json_body=body)

    async def _do_set_cooling(
        self, mode: CoolingMode, speed_percent: int | None, target_temp_c: float | None
    ) -> None:
        body: dict[str, Any] = {"mode": COOLING_MODES[mode]}
        if speed_percent is not None:
            body["speed_percentage"] = int(speed_percent)
        if target_temp_c is not None:
            body["target_temperature_c"] = float(target_temp_c)
        await self.client.request("PUT", "/cooling", json_body=body)

    async def _do_logs(self, lines: int, source: str | None) -> list[str]:
        if source is not None and source not in LOG_SOURCES:
            raise Rejected(f"log source must be one of {', '.join(LOG_SOURCES)}")
        params = {"lines": str(max(1, min(lines, MAX_LOG_LINES))), "source": source or "miner_sw"}
        body = as_dict(
            as_dict(await self.client.get_json("/system/logs", params=params)).get("logs")
        )
        return [str(line) for line in as_list(body.get("content"))]

    async def _do_change_password(self, new_password: str) -> Credentials:
        c = self.client
        status = as_dict(await c.get_json("/system/status", auth=False))
        if status.get("password_set") is False:
            await c.request(
                "PUT", "/auth/password", auth=False, json_body={"password": new_password}
            )
        else:
            body = {"current_password": c.credentials.password, "new_password": new_password}
            await c.request("PUT", "/auth/change-password", json_body=body)
        c.tokens.invalidate(c.token_key)  # the firmware revoked every token anyway
        c.credentials = Credentials(password=new_password)
        c.gated.clear()  # the factory password is gone, and with it the gate
        return c.credentials


async def _identity_read(client: ProtoOSClient, path: str) -> Any:
    """A public identity detail: its JSON, None when the firmware lacks it, or the
    `Unreachable` itself when the connection dropped (a rebooting rig)."""
    try:
        return await client.get_json(path, auth=False)
    except (BadResponse, Unsupported, Rejected):
        return None
    except Unreachable as exc:
        return exc


class ProtoOSDriver(Driver):
    name = "protoos"
    priority = 10
    discovery_ports = (443, 80, 8080)
    default_credentials: ClassVar[Credentials | None] = Credentials(password=FACTORY_PASSWORD)
    embedded_view_available = True

    def __init__(self, http: HttpClient | None = None, tokens: TokenCache | None = None) -> None:
        self._http = http
        self.tokens = tokens or TokenCache()

    def _client(
        self, host: str, port: int, scheme: str | None, creds: Credentials | None
    ) -> ProtoOSClient:
        return ProtoOSClient(
            self._http or shared_http(), self.tokens, host, port, scheme=scheme, credentials=creds
        )

    async def _identify(
        self, host: str, port: int, credentials: Credentials | None
    ) -> DeviceInfo | None:
        client = self._client(host, port, None, credentials)
        pairing = as_dict(await client.get_json("/pairing/info", auth=False))
        mac, serial = pairing.get("mac"), pairing.get("cb_sn")
        if not (isinstance(mac, str) and mac and isinstance(serial, str) and serial):
            return None
        # `/pairing/info` alone proves a ProtoOS rig. A rebooting one answers it but drops the
        # connection on `/system` (and `/network`) for a while: still a known rig. The reads
        # go one after the other on the connection `/pairing/info` opened (a scan's client
        # keeps one per rig), and `/network` only when `/system` didn't name the host.
        system_body = await _identity_read(client, "/system")
        rebooting = isinstance(system_body, Unreachable)
        system = as_dict(as_dict(system_body).get("system-info"))
        os_info = as_dict(system.get("os"))
        network: dict[str, Any] = {}
        if not _text(os_info.get("hostname")):
            network = as_dict(as_dict(await _identity_read(client, "/network")).get("network-info"))
        return DeviceInfo(
            driver=self.name,
            host=client.host,
            port=client.port,
            make=str(system.get("manufacturer") or "Proto"),
            model=str(system.get("model") or system.get("product_name") or "Proto rig"),
            firmware=_text(os_info.get("version")),
            serial=serial,
            mac=mac,
            scheme=client.scheme,
            hostname=_text(os_info.get("hostname")) or _text(network.get("hostname")),
            extra={k: system[k] for k in ("product_name", "board", "soc") if k in system},
            state=MinerState.REBOOTING if rebooting else None,
        )

    async def same_device(
        self, host: str, port: int, known: DeviceInfo, *, timeout: float = IDENTIFY_TIMEOUT
    ) -> DeviceInfo | None:
        """A rig answering on 443 and 80 is one rig: `/pairing/info` on the second port naming
        the same MAC and serial proves it (one request instead of a full identify's three)."""
        client = self._client(host, port, None, None)
        try:
            pairing = as_dict(
                await within(
                    timeout, f"{host}:{port} identify", client.get_json("/pairing/info", auth=False)
                )
            )
        except MinerError:
            return None
        if not known.mac or (pairing.get("mac"), pairing.get("cb_sn")) != (known.mac, known.serial):
            return None
        return dataclasses.replace(known, host=client.host, port=port, scheme=client.scheme)

    def connect(
        self,
        info: DeviceInfo,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ProtoOSDevice:
        client = self._client(info.host, info.port, info.scheme, credentials)
        return ProtoOSDevice(info, client, credentials, timeout)
