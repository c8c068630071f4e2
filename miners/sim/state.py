"""One simulated miner: configuration, runtime state and its telemetry model.

Nothing here runs on a timer: every figure is computed from timestamps when a request asks for
it, so ten thousand idle miners cost no CPU. Counters that integrate over time (work done,
shares) are folded into totals by `settle()` just before anything changes their rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from miners.sim.models import ANTMINER, PROTOOS, ModelSpec
from miners.sim.spec import PROTO_FACTORY_PASSWORD

R0 = 0.026  # °C per watt of board power at zero airflow bonus: ~40 °C rise at 60 % fan.
SHARES_PER_TH_S = 1 / 600  # ~10 accepted shares a minute at 100 TH/s.
HW_ERRORS_PER_TH_S = 1 / 5000
IDLE_W = {PROTOOS: 60.0, ANTMINER: 15.0}
WORK_MODE_POWER = {0: 1.0, 2: 0.75}  # Antminer normal / low power; 1 (sleep) does not hash.
EFFICIENCY_MODE_POWER = 0.9
OVERHEAT_C = {"degraded": 95.0, "error": 106.0}
MAX_ACCESS_TOKENS = 8
"""Access tokens a rig keeps valid at once: the one from the last login plus those refreshes
issued since (a refresh does not revoke the token other clients hold; a login does)."""


@dataclass(slots=True)
class Timing:
    """Fleet-wide timings, shared by reference so tests can shorten them on a live fleet."""

    stats_delay: float = 3.0
    reboot_downtime: float = 15.0
    token_ttl: float = 3600.0
    refresh_ttl: float = 7 * 86400.0


class Pool:
    __slots__ = (
        "authority_pubkey",
        "enabled",
        "name",
        "password",
        "priority",
        "rejects",
        "shares",
        "url",
        "user",
    )

    def __init__(
        self,
        url: str,
        user: str,
        password: str = "",
        priority: int = 0,
        name: str = "",
        authority_pubkey: str = "",
    ):
        self.url = url
        self.user = user
        self.password = password
        self.priority = priority
        self.name = name
        self.authority_pubkey = authority_pubkey
        self.enabled = True
        self.shares = 0.0
        self.rejects = 0.0


def mix(seed: int, bucket: int) -> float:
    """A deterministic pseudo-random value in [-1, 1] for (seed, bucket): cheap integer hash."""
    x = (seed * 2654435761 + bucket * 40503 + 0x9E3779B9) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0x5BD1E995) & 0xFFFFFFFF
    x ^= x >> 15
    return x / 2147483647.5 - 1.0


def drift(seed: int, t: float) -> float:
    """Slow wave plus 5-second jitter in [-1, 1], so values wander without a stored history."""
    return 0.6 * math.sin(t / 300.0 + (seed % 628) / 100.0) + 0.4 * mix(seed, int(t // 5))


class Reading(NamedTuple):
    """The physical figures of one miner at one instant."""

    hashing: bool
    ths: float
    power_w: float
    board_ths: list[float]
    board_w: list[float]
    fan_pct: int
    fan_rpms: list[int]
    chips: list[float]
    board_temps: list[tuple[float, float, float]]


class Miner:
    """State of one simulated miner; protocol modules read it and call its few mutators."""

    __slots__ = (
        "access_tokens",
        "ambient_c",
        "boot_at",
        "down_until",
        "factory",
        "fan_mode",
        "fan_pct",
        "faults",
        "flavour",
        "host",
        "index",
        "kind",
        "locate_until",
        "mac",
        "mining_enabled",
        "mining_since",
        "model",
        "noise",
        "password",
        "performance_mode",
        "pools",
        "ports",
        "power_target_w",
        "quirks",
        "refresh_exp",
        "refresh_token",
        "serial",
        "settings",
        "settled_at",
        "target_temp_c",
        "timing",
        "tls",
        "work_mode",
        "work_ths",
    )

    def __init__(
        self,
        *,
        kind: str,
        index: int,
        host: str,
        ports: dict[str, int],
        model: ModelSpec,
        serial: str,
        mac: str,
        password: str,
        factory: bool,
        seed: int,
        timing: Timing,
        now: float,
        tls: bool = True,
        quirks: bool = False,
        flavour: str = "spec",
    ) -> None:
        self.kind = kind
        self.index = index
        self.host = host
        self.ports = ports
        self.model = model
        self.serial = serial
        self.mac = mac
        self.password = password
        self.factory = factory
        self.tls = tls
        self.quirks = quirks
        self.flavour = flavour
        self.timing = timing
        self.noise = (seed * 1_000_003 + index * 7919 + (kind == ANTMINER)) & 0xFFFFFFFF
        self.ambient_c = 22.0 + (self.noise % 600) / 100.0
        self.access_tokens: dict[str, float] | None = None  # token -> expiry
        self.refresh_token: str | None = None
        self.refresh_exp = 0.0
        self.mining_enabled = True
        self.power_target_w = model.nominal_w
        self.performance_mode = "MaximumHashrate"
        self.work_mode = 0
        self.fan_mode = "Auto"
        self.fan_pct = 100
        self.target_temp_c = 65.0 if kind == PROTOOS else 70.0
        self.pools: list[Pool] = []
        self.locate_until = 0.0
        self.settings: dict[str, Any] | None = None
        self.faults: dict[str, dict[str, Any]] | None = None
        self.down_until = 0.0
        self.boot(now)

    # -- lifecycle -------------------------------------------------------------------------

    def boot(self, now: float) -> None:
        """Fresh uptime: counters restart, sessions are gone, the locate LED is off."""
        self.boot_at = now
        self.mining_since = now
        self.settled_at = now
        self.work_ths = 0.0
        self.down_until = 0.0
        self.locate_until = 0.0
        self.revoke_tokens()
        for pool in self.pools:
            pool.shares = pool.rejects = 0.0

    def revoke_tokens(self) -> None:
        self.access_tokens = None
        self.refresh_token = None

    def add_access_token(self, token: str, expires: float, *, revoke_others: bool) -> None:
        """Make `token` valid until `expires`. A login revokes every other access token (one
        valid token per rig); a refresh keeps the recent ones valid."""
        if revoke_others or self.access_tokens is None:
            self.access_tokens = {}
        tokens = self.access_tokens
        tokens[token] = expires
        while len(tokens) > MAX_ACCESS_TOKENS:
            del tokens[next(iter(tokens))]

    def access_valid(self, token: str, now: float) -> bool:
        expires = None if self.access_tokens is None else self.access_tokens.get(token)
        return expires is not None and now < expires

    @property
    def password_set(self) -> bool:
        """ProtoOS `password_set`: some password other than the factory `proto` exists (a rig
        with a per-unit label password has one even before it is onboarded)."""
        return self.password != PROTO_FACTORY_PASSWORD

    @property
    def field(self) -> bool:
        """Whether this rig answers with the field drift rather than exactly per the spec."""
        return self.flavour == "field"

    def is_down(self, now: float) -> bool:
        """Rebooting or unplugged: connections must fail rather than be answered."""
        return now < self.down_until or self.has_fault("offline")

    def rebooting(self, now: float) -> bool:
        return now < self.down_until

    def has_fault(self, kind: str) -> bool:
        return self.faults is not None and kind in self.faults

    def fault(self, kind: str) -> dict[str, Any] | None:
        return None if self.faults is None else self.faults.get(kind)

    def setting(self, name: str, default: Any) -> Any:
        return default if self.settings is None else self.settings.get(name, default)

    def set_setting(self, name: str, value: Any) -> None:
        if self.settings is None:
            self.settings = {}
        self.settings[name] = value

    # -- mutators (always settle first so integrated counters keep the old rate) -----------

    def restart_mining(self, now: float) -> None:
        """A new mining run begins (start, wake from sleep, first pools): the hashboards take
        `stats_delay` to come up and the run's counters (hash count behind the average
        hashrate, hardware errors) start from zero, as the firmware's do. Call `settle` first."""
        self.mining_since = now
        self.work_ths = 0.0

    def set_mining(self, enabled: bool, now: float) -> None:
        self.settle(now)
        if enabled and not self.mining_enabled:
            self.restart_mining(now)
        self.mining_enabled = enabled

    def set_pools(self, pools: list[Pool], now: float) -> None:
        self.settle(now)
        had_pools = bool(self.pools)
        self.pools = sorted(pools, key=lambda p: p.priority)
        if pools and not had_pools:
            self.restart_mining(now)

    def locate(self, on: bool, seconds: float, now: float) -> None:
        self.locate_until = (math.inf if seconds <= 0 else now + seconds) if on else 0.0

    def locate_on(self, now: float) -> bool:
        return now < self.locate_until

    # -- time integration ------------------------------------------------------------------

    def hashing_from(self) -> float:
        """When the current hashing stretch began (hashboards take `stats_delay` to come up)."""
        return max(self.boot_at, self.mining_since) + self.timing.stats_delay

    def settle(self, now: float) -> None:
        """Fold work and shares done at the current rate into the totals."""
        start = max(self.settled_at, self.hashing_from())
        if now > start:
            done = self.rate_ths() * (now - start)
            self.work_ths += done
            pool = self.active_pool()
            if pool is not None and done:
                pool.shares += done * SHARES_PER_TH_S
                pool.rejects += done * SHARES_PER_TH_S * 0.003
        self.settled_at = now

    def work_done(self, now: float) -> float:
        start = max(self.settled_at, self.hashing_from())
        return self.work_ths + self.rate_ths() * max(0.0, now - start)

    def shares(self, pool: Pool, now: float) -> tuple[int, int]:
        """(accepted, rejected) of a pool including the not yet settled stretch."""
        extra = 0.0
        if pool is self.active_pool():
            start = max(self.settled_at, self.hashing_from())
            extra = self.rate_ths() * max(0.0, now - start) * SHARES_PER_TH_S
        return int(pool.shares + extra), int(pool.rejects + extra * 0.003)

    def hw_errors(self, now: float) -> int:
        return int(self.work_done(now) * HW_ERRORS_PER_TH_S)

    # -- the physical model ----------------------------------------------------------------

    def active_pool(self) -> Pool | None:
        if self.has_fault("dead_pool"):
            return None
        for pool in self.pools:
            if pool.enabled:
                return pool
        return None

    def wants_to_hash(self) -> bool:
        return (
            self.mining_enabled
            and self.work_mode != 1
            and self.active_pool() is not None
            and not self._thermal_shutdown()
        )

    def _thermal_shutdown(self) -> bool:
        overheat = self.fault("overheat")
        return overheat is not None and overheat.get("severity") == "error"

    def alive_boards(self) -> int:
        return self.model.boards - (1 if self.has_fault("dead_board") else 0)

    def dead_board(self) -> int | None:
        fault = self.fault("dead_board")
        return None if fault is None else int(fault.get("board", 0)) % self.model.boards

    def failed_psu(self) -> int | None:
        """0-based index of the PSU the `psu_fault` fault has failed, if any."""
        fault = self.fault("psu_fault")
        return None if fault is None else int(fault.get("psu", 0)) % self.model.psus

    def target_power_w(self) -> float:
        """Power the hashboards draw while hashing, before throttling and failures."""
        if self.kind == ANTMINER:
            return self.model.nominal_w * WORK_MODE_POWER.get(self.work_mode, 1.0)
        factor = EFFICIENCY_MODE_POWER if self.performance_mode == "Efficiency" else 1.0
        return self.power_target_w * factor

    def rate_ths(self) -> float:
        """Steady hashrate for the current configuration (no jitter, no time conditions)."""
        if not self.wants_to_hash():
            return 0.0
        m = self.model
        ths = m.nominal_ths * math.pow(self.target_power_w() / m.nominal_w, 0.75)
        ths *= self.alive_boards() / m.boards
        if self.has_fault("overheat"):
            ths *= 0.6
        return ths

    def hashing(self, now: float) -> bool:
        """Hashing at `now`; before the current boot the rig is taken to have run as configured
        now, which gives time series a plausible history without storing one."""
        if self.is_down(now) or self.rate_ths() <= 0:
            return False
        return now < self.boot_at or now >= self.hashing_from()

    def read(self, now: float) -> Reading:
        """All physical figures at `now` in one pass (a reply needs most of them together)."""
        model = self.model
        boards = model.boards
        hashing = self.hashing(now)
        dead = self.dead_board()
        alive = self.alive_boards()
        overheat = self.fault("overheat")
        idle = IDLE_W[self.kind]
        if hashing:
            ths = self.rate_ths() * (1.0 + 0.02 * drift(self.noise, now))
            draw = self.target_power_w() * alive / boards * (0.7 if overheat else 1.0)
            power = (idle + draw) * (1.0 + 0.004 * drift(self.noise + 1, now))
        else:
            ths, power = 0.0, idle
        per_board_ths = ths / alive if alive else 0.0
        per_board_w = (power - idle) / max(1, alive)
        board_ths = []
        board_w = []
        for i in range(boards):
            up = i != dead
            board_ths.append(per_board_ths * (1 + 0.01 * mix(self.noise + i, 0)) if up else 0.0)
            board_w.append(per_board_w if up else 0.0)
        if overheat is not None:
            fan_pct = 100
        elif self.fan_mode == "Manual":
            fan_pct = self.fan_pct
        elif self.fan_mode == "Off":
            fan_pct = 0
        else:  # Auto: the airflow that holds the target temperature at this power
            needed = per_board_w * R0 / max(5.0, self.target_temp_c - self.ambient_c)
            fan_pct = round(100 * min(1.0, max(0.15, (needed - 0.3) / 0.7)))
        bucket = int(now // 5)
        rpm = model.fan_max_rpm * fan_pct / 100
        fan_rpms = [
            max(0, round(rpm * (1 + 0.015 * mix(self.noise + 10 + i, bucket))))
            for i in range(model.fans)
        ]
        # Chips: ambient plus board power over airflow; an overheating rig sits at its thermal
        # limit whatever the fans do (think blocked intake).
        airflow = 1.2 if self.fan_mode == "Off" else 0.3 + 0.7 * fan_pct / 100
        floor = 0.0 if overheat is None else OVERHEAT_C[overheat["severity"]]
        wobble = 1.5 * drift(self.noise + 2, now)
        amb = self.ambient_c
        chips = [
            round(max(floor, amb + w * R0 / airflow) + wobble + 0.8 * mix(self.noise, i), 2)
            for i, w in enumerate(board_w)
        ]
        temps = [
            (round(amb + 3.0, 2), round(amb + 0.8 * (c - amb), 2), round(amb + 0.65 * (c - amb), 2))
            for c in chips
        ]
        return Reading(hashing, ths, power, board_ths, board_w, fan_pct, fan_rpms, chips, temps)

    def hashrate_ths(self, now: float) -> float:
        return self.read(now).ths

    def board_hashrates_ths(self, now: float) -> list[float]:
        return self.read(now).board_ths

    def power_w(self, now: float) -> float:
        return self.read(now).power_w

    def board_power_w(self, now: float) -> list[float]:
        return self.read(now).board_w

    def fan_percent(self, now: float) -> int:
        return self.read(now).fan_pct

    def fan_rpms(self, now: float) -> list[int]:
        return self.read(now).fan_rpms

    def asic_temps_c(self, now: float) -> list[float]:
        """Average chip temperature per board."""
        return self.read(now).chips

    def board_temps_c(self, now: float) -> list[tuple[float, float, float]]:
        """(inlet, outlet, pcb average) per board."""
        return self.read(now).board_temps

    def board_serial(self, board: int) -> str:
        return f"HB{self.serial[2:8]}{self.index % 1_000_000:06d}{board:02d}"

    def snapshot(self, now: float) -> dict[str, Any]:
        """Readable state for the control API and for tests (not a firmware payload)."""
        return {
            "kind": self.kind,
            "host": self.host,
            "serial": self.serial,
            "model": self.model.name,
            "down": self.is_down(now),
            "rebooting": now < self.down_until,
            "uptime_s": round(now - self.boot_at, 1),
            "mining_enabled": self.mining_enabled,
            "hashing": self.hashing(now),
            "hashrate_ths": round(self.hashrate_ths(now), 3),
            "power_w": round(self.power_w(now), 1),
            "power_target_w": self.power_target_w,
            "work_mode": self.work_mode,
            "fan_mode": self.fan_mode,
            "locate": self.locate_on(now),
            "factory_password": self.factory,
            "flavour": self.flavour,
            "pools": [{"url": p.url, "user": p.user, "priority": p.priority} for p in self.pools],
            "faults": {k: dict(v) for k, v in (self.faults or {}).items()},
        }
