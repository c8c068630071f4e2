"""Stock Antminer: CGMiner RPC on 4028 for telemetry, digest-protected web CGI on 80 for
identity (serial, MAC) and every write.

Stock firmware has no watt-level power target and no start/stop: both are *work modes* in
the miner config ("0" normal, "1" sleep, "2" low power). So `stop_mining` = sleep,
`start_mining` = normal, `set_power_target(mode=EFFICIENCY)` = low power,
`mode=MAXIMUM_HASHRATE` = normal, and `watts=` raises `Unsupported` (rounding a wattage to a
mode would silently do something else than asked).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar

from miners.antminer_web import DEFAULT_PASSWORD, DEFAULT_USER, WEB_PORT, AntminerWeb
from miners.base import Detail, Device, Driver, as_dict, as_list, gather_or_fail, integer, num
from miners.cgminer import RPC_PORT, CgminerClient
from miners.deadline import DEFAULT_TIMEOUT
from miners.digest import ANTMINER_REALM, Challenge, parse_challenge
from miners.errors import MinerError, Unreachable, Unsupported
from miners.http import HttpClient, host_for_url, shared_http
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

MODE_NORMAL, MODE_SLEEP, MODE_LOW_POWER = 0, 1, 2
MODE_KEYS = ("bitmain-work-mode", "miner-mode")
AFTERMARKET = ("luxos", "luxminer", "braiins", "bosminer", "bos+", "vnish", "marafw", "epic")
_CHAIN = re.compile(r"^chain_(?:acn|rate)(\d+)$")


def is_stock(version: dict[str, Any]) -> bool:
    """A stock Antminer: `Type` starts "Antminer" and no aftermarket firmware shows itself."""
    blob = " ".join(f"{k} {v}" for k, v in version.items()).lower()
    model = str(version.get("Type") or "")
    return model.startswith("Antminer") and not any(marker in blob for marker in AFTERMARKET)


def work_mode(conf: dict[str, Any]) -> int | None:
    """The work mode, whichever key and type (int or "2") the firmware used."""
    for key in MODE_KEYS:
        if key in conf:
            return integer(conf[key])
    return None


def _temps(value: Any) -> list[float]:
    """Chip/PCB temperatures come as a number or as "61-64-63-60" strings."""
    if isinstance(value, str) and "-" in value.strip("-"):
        return [t for t in (num(p) for p in value.split("-")) if t]
    if isinstance(value, list):
        return [t for t in map(num, value) if t]
    single = num(value)
    return [single] if single else []


def _watts(value: Any) -> float | None:
    """A power figure given as a number or as a "3250 W" string."""
    if isinstance(value, str):
        value = value.strip().removesuffix("W").strip()
    return num(value)


def parse_pools(reply: dict[str, Any]) -> list[Pool]:
    pools = []
    for raw in map(as_dict, as_list(reply.get("POOLS"))):
        alive = str(raw.get("Status", "")).lower() == "alive"
        active = bool(raw.get("Stratum Active"))
        pools.append(
            Pool(
                url=str(raw.get("URL") or ""),
                user=str(raw.get("User") or ""),
                status=(
                    PoolStatus.DEAD
                    if not alive
                    else PoolStatus.ACTIVE
                    if active
                    else PoolStatus.IDLE
                ),
                priority=integer(raw.get("Priority")),
                accepted=integer(raw.get("Accepted")),
                rejected=integer(raw.get("Rejected")),
            )
        )
    pools = [p for p in pools if p.url]
    pools.sort(key=lambda p: p.priority if p.priority is not None else 99)
    return pools


def merged_stats(reply: dict[str, Any]) -> dict[str, Any]:
    """bmminer splits STATS into a version object and a data object: one dict."""
    stats: dict[str, Any] = {}
    for part in map(as_dict, as_list(reply.get("STATS"))):
        stats.update(part)
    return stats


def parse_hashboards(stats: dict[str, Any]) -> list[Hashboard]:
    chains = sorted({int(m.group(1)) for k in stats if (m := _CHAIN.match(k))})
    expected = integer(stats.get("miner_count"))
    boards: list[Hashboard] = []
    for i in chains:
        chips = integer(stats.get(f"chain_acn{i}"))
        rate = num(stats.get(f"chain_rate{i}"))
        if expected is not None and len(boards) >= expected and not chips and not rate:
            continue  # empty slot beyond the installed boards
        chip_t = _temps(stats.get(f"temp_chip{i}")) or _temps(stats.get(f"temp2_{i}"))
        board_t = _temps(stats.get(f"temp_pcb{i}")) or _temps(stats.get(f"temp{i}"))
        ideal = num(stats.get(f"chain_rateideal{i}"))
        boards.append(
            Hashboard(
                slot=i,
                serial=stats.get(f"chain_sn{i}") or None,
                ok=bool(chips) and bool(rate) and "x" not in str(stats.get(f"chain_acs{i}", "")),
                hashrate_ths=round(rate / 1000, 4) if rate is not None else None,
                ideal_hashrate_ths=round(ideal / 1000, 4) if ideal is not None else None,
                chip_temp_c=round(sum(chip_t) / len(chip_t), 1) if chip_t else None,
                chip_temp_max_c=max(chip_t, default=None),
                board_temp_c=max(board_t, default=None),
                power_w=_watts(stats.get(f"chain_power{i}")),
                chips=chips,
            )
        )
    return boards


def parse_status(
    replies: dict[str, dict[str, Any]],
    *,
    mode: int | None = None,
    default_password: bool | None = None,
) -> MinerStatus:
    """A `MinerStatus` from the RPC summary/pools/stats replies and the work mode (from the
    web miner config, None when unknown). RPC alone can't tell a sleeping rig from a broken
    one (both hash nothing), so without the mode a silent rig is UNKNOWN, not ERROR."""
    summary = as_dict((as_list(replies.get("summary", {}).get("SUMMARY")) or [{}])[0])
    stats = merged_stats(replies.get("stats", {}))
    pools = parse_pools(replies.get("pools", {}))
    boards = parse_hashboards(stats)
    ghs = num(summary.get("GHS 5s"))
    if ghs is None:
        ghs = num(stats.get("GHS 5s"))
    if ghs is None and num(summary.get("MHS 5s")) is not None:
        ghs = (num(summary.get("MHS 5s")) or 0) / 1000
    hashrate = round(ghs / 1000, 4) if ghs is not None else None
    ideal = num(stats.get("total_rateideal"))
    power = (
        num(stats.get("Power"))
        or num(stats.get("power"))
        or num(summary.get("Power"))
        or _watts(stats.get("chain_power"))  # newer stock firmware: "3250 W"
    )
    if power is None and boards and all(b.power_w is not None for b in boards):
        power = sum(b.power_w or 0 for b in boards)
    uptime = integer(summary.get("Elapsed")) or integer(stats.get("Elapsed"))
    if mode == MODE_SLEEP:
        state = MinerState.SLEEPING
    elif hashrate:
        state = MinerState.DEGRADED if any(not b.ok for b in boards) else MinerState.MINING
    elif ("pools" in replies and not pools) or (
        pools and all(p.status is PoolStatus.DEAD for p in pools)
    ):
        state = MinerState.NO_POOLS  # none configured ("No pools") or none reachable
    elif uptime is not None and uptime < 300:
        state = MinerState.STARTING
    else:
        state = MinerState.ERROR if boards and mode is not None else MinerState.UNKNOWN
    mining = state in (MinerState.MINING, MinerState.DEGRADED)
    if not mining:
        for board in boards:
            board.ok = True  # a sleeping or starting rig has no dead boards, just idle ones
    chip = [b.chip_temp_c for b in boards if b.chip_temp_c is not None]
    temps = Temperatures(
        chip_avg_c=round(sum(chip) / len(chip), 1) if chip else None,
        chip_max_c=max((b.chip_temp_max_c for b in boards if b.chip_temp_max_c), default=None),
        board_avg_c=max((b.board_temp_c for b in boards if b.board_temp_c), default=None),
    )
    fan_count = integer(stats.get("fan_num"))
    fans = [
        Fan(slot=i, rpm=integer(stats.get(f"fan{i}")))
        for i in range(1, 9)
        if f"fan{i}" in stats and (fan_count is None or i <= fan_count)
    ]
    issues = [
        MinerIssue(f"hashboard {b.slot} is not hashing", "hashboard", "HB_DEAD", b.slot)
        for b in boards
        if not b.ok
    ]
    return MinerStatus(
        health=assess_health(
            state, hashboards=boards, pools=pools, temperatures=temps, errors=issues
        ),
        state=state,
        firmware_state=f"work-mode {mode}" if mode is not None else None,
        hashrate_ths=hashrate,
        ideal_hashrate_ths=round(ideal / 1000, 4) if ideal else None,
        power_w=power,
        power_mode=(
            PowerMode.EFFICIENCY
            if mode == MODE_LOW_POWER
            else PowerMode.MAXIMUM_HASHRATE
            if mode == MODE_NORMAL
            else None
        ),
        efficiency_jth=efficiency(power, hashrate),
        temperatures=temps,
        fans=fans,
        hashboards=boards,
        pools=pools,
        uptime_s=uptime,
        default_password_active=default_password,
        errors=issues,
    )


class AntminerDevice(Device):
    capabilities = frozenset(
        {
            Capability.REBOOT,
            Capability.BLINK,
            Capability.START_MINING,
            Capability.STOP_MINING,
            Capability.POWER_MODE,
            Capability.POOLS,
            Capability.COOLING,
            Capability.LOGS,
            Capability.CHANGE_PASSWORD,
        }
    )

    def __init__(
        self,
        info: DeviceInfo,
        rpc: CgminerClient,
        web: AntminerWeb,
        credentials: Credentials | None,
        timeout: float,
    ) -> None:
        super().__init__(info, credentials, timeout)
        self.rpc = rpc
        self.web = web
        self.work_mode: int | None = None
        """Last work mode seen (FULL status or our own write), for cheap SUMMARY polls."""

    async def _do_status(self, detail: Detail) -> MinerStatus:
        if detail is Detail.SUMMARY:
            replies = await self.rpc.commands("summary", "pools", "stats")
            return parse_status(replies, mode=self.work_mode)
        replies, conf = await gather_or_fail(
            self.rpc.commands("summary", "pools", "stats"),
            self.web.get_json("/cgi-bin/get_miner_conf.cgi"),
        )
        self.work_mode = work_mode(conf)
        creds = self.web.credentials
        default = creds.password == DEFAULT_PASSWORD and self.web.username == DEFAULT_USER
        return parse_status(replies, mode=self.work_mode, default_password=default)

    async def _update_conf(self, **changes: Any) -> None:
        """Read-modify-write of the miner config: the CGI wants the whole config back."""
        conf = await self.web.get_json("/cgi-bin/get_miner_conf.cgi")
        if "mode" in changes:
            mode = changes.pop("mode")
            conf["miner-mode"] = mode
            if "bitmain-work-mode" in conf:
                conf["bitmain-work-mode"] = str(mode)
        conf.update(changes)
        await self.web.post_expecting("/cgi-bin/set_miner_conf.cgi", conf, "M000")
        self.work_mode = work_mode(conf)

    async def _do_reboot(self) -> None:
        try:
            await self.web.request("POST", "/cgi-bin/reboot.cgi")
        except Unreachable as exc:
            if exc.code != "EPROTO":
                raise  # never connected; a dropped reply means the reboot has begun

    async def _do_blink(self, on: bool, seconds: int | None) -> None:
        body = {"blink": "true" if on else "false"}
        await self.web.post_expecting("/cgi-bin/blink.cgi", body, "B000", "B100")

    async def _do_start_mining(self) -> None:
        await self._update_conf(mode=MODE_NORMAL)

    async def _do_stop_mining(self) -> None:
        await self._update_conf(mode=MODE_SLEEP)

    async def _do_set_power_target(self, watts: int | None, mode: PowerMode | None) -> None:
        if mode is None:
            raise Unsupported("stock Antminer firmware has no watt-level power target")
        await self._update_conf(
            mode=MODE_LOW_POWER if mode is PowerMode.EFFICIENCY else MODE_NORMAL
        )

    async def _do_set_pools(self, pools: list[PoolConfig]) -> None:
        slots = [{"url": p.url, "user": p.user, "pass": p.password} for p in pools]
        slots += [{"url": "", "user": "", "pass": ""}] * (3 - len(slots))
        await self._update_conf(pools=slots)

    async def _do_set_cooling(
        self, mode: CoolingMode, speed_percent: int | None, target_temp_c: float | None
    ) -> None:
        if mode is CoolingMode.OFF or target_temp_c is not None:
            raise Unsupported("stock Antminer cooling is automatic or a fixed fan speed only")
        if mode is CoolingMode.MANUAL:
            if speed_percent is None or not 0 <= speed_percent <= 100:
                raise Unsupported("manual cooling needs a fan speed between 0 and 100 %")
            await self._update_conf(
                **{"bitmain-fan-ctrl": True, "bitmain-fan-pwm": str(speed_percent)}
            )
        else:
            await self._update_conf(**{"bitmain-fan-ctrl": False, "bitmain-fan-pwm": "100"})

    async def _do_logs(self, lines: int, source: str | None) -> list[str]:
        if source not in (None, "kernel"):
            raise Unsupported("stock Antminer firmware only exposes the kernel log")
        reply = await self.web.request("GET", "/cgi-bin/get_kernel_log.cgi")
        return reply.text().splitlines()[-max(1, lines) :]

    async def _do_change_password(self, new_password: str) -> Credentials:
        body = {
            "curPwd": self.web.credentials.password,
            "newPwd": new_password,
            "confirmPwd": new_password,
        }
        await self.web.post_expecting("/cgi-bin/passwd.cgi", body, "P000")
        self.web.credentials = Credentials(password=new_password, username=self.web.username)
        return self.web.credentials


def companion_port(port: int, real: int, other: int) -> int:
    """The RPC port for a web port or vice versa. Real rigs use 80/4028; a rig behind a port
    shift (NAT, simulators with --port-offset) is assumed to shift both alike."""
    return other + (port - real)


class AntminerDriver(Driver):
    name = "antminer"
    priority = 20
    embedded_view_available = True  # the single-miner view reads its web CGI via the proxy
    discovery_ports = (RPC_PORT, WEB_PORT)
    default_credentials: ClassVar[Credentials | None] = Credentials(
        password=DEFAULT_PASSWORD, username=DEFAULT_USER
    )

    def __init__(self, http: HttpClient | None = None) -> None:
        self._http = http

    async def _identify(
        self, host: str, port: int, credentials: Credentials | None
    ) -> DeviceInfo | None:
        http = self._http or shared_http()
        # An HTTP server never answers a bare RPC request (no request line ever ends), so any
        # port but 4028 is asked the cheap HTTP question first; an RPC port fails it at once.
        # Its 401 carries the digest challenge, which the system-info read then answers
        # directly. The RPC `version` and the (login-protected) system info are on different
        # ports and asked concurrently: a busy rig's CGIs are slow, and identification has
        # one deadline for everything.
        challenge: Challenge | None = None
        web: bool | None = None
        if port != RPC_PORT:
            web, challenge = await self._web_probe(http, host, port)
            if web is False:
                return None  # some other HTTP server
        if web:
            rpc_port, web_port = companion_port(port, WEB_PORT, RPC_PORT), port
        else:
            rpc_port, web_port = port, companion_port(port, RPC_PORT, WEB_PORT)
        system_task = asyncio.ensure_future(
            self._system_info(http, host, web_port, credentials, challenge)
        )
        try:
            version = await self._version(host, rpc_port)
            if (version is None and not web) or (version is not None and not is_stock(version)):
                return None
            system = await system_task
        finally:
            system_task.cancel()
        model = str((version or {}).get("Type") or system.get("minertype") or "Antminer")
        return DeviceInfo(
            driver=self.name,
            host=host,
            port=port,
            make="Bitmain",
            model=model,
            firmware=str(
                system.get("system_filesystem_version") or (version or {}).get("CompileTime") or ""
            )
            or None,
            serial=system.get("serinum") or None,
            mac=system.get("macaddr") or None,
            scheme="http",
            hostname=system.get("hostname") or None,
            ports={"rpc": rpc_port, "web": web_port},
            extra={
                k: v
                for k, v in (version or {}).items()
                if k in ("BMMiner", "CGMiner", "API", "Miner")
            },
        )

    async def _web_probe(
        self, http: HttpClient, host: str, port: int
    ) -> tuple[bool | None, Challenge | None]:
        """(True, its challenge) when ``GET /`` is answered by the stock firmware's 401 digest
        challenge (its own realm), False for any other HTTP answer, None when the port doesn't
        speak HTTP."""
        try:
            reply = await http.request("GET", f"http://{host_for_url(host)}:{port}/")
        except MinerError:
            return None, None
        challenge = parse_challenge(reply.headers.get("WWW-Authenticate"))
        if reply.status == 401 and challenge is not None and challenge.realm == ANTMINER_REALM:
            return True, challenge
        return False, None

    async def _version(self, host: str, port: int) -> dict[str, Any] | None:
        """The RPC VERSION block, or None when nothing CGMiner-like answered."""
        try:
            reply = await CgminerClient(host, port).command("version")
        except MinerError:
            return None
        return as_dict((as_list(reply.get("VERSION")) or [{}])[0])

    async def _system_info(
        self,
        http: HttpClient,
        host: str,
        port: int,
        creds: Credentials | None,
        challenge: Challenge | None = None,
    ) -> dict[str, Any]:
        """Serial and MAC live behind the web login; without working credentials the device
        is still identified, just without them."""
        web = AntminerWeb(http, host, port, creds or self.default_credentials, challenge)
        try:
            return await web.get_json("/cgi-bin/get_system_info.cgi")
        except MinerError:
            return {}

    def connect(
        self,
        info: DeviceInfo,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> AntminerDevice:
        rpc_port = info.ports.get("rpc", info.port if info.port != WEB_PORT else RPC_PORT)
        web_port = info.ports.get("web", companion_port(rpc_port, RPC_PORT, WEB_PORT))
        web = AntminerWeb(self._http or shared_http(), info.host, web_port, credentials)
        return AntminerDevice(info, CgminerClient(info.host, rpc_port), web, credentials, timeout)
