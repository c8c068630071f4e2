"""Synthetic log tails: deterministic per miner and time, generated only when asked for."""

from __future__ import annotations

import datetime

from miners.sim.state import Miner, mix

STEP_S = 7
TEMPLATES: dict[str, tuple[str, ...]] = {
    "os": (
        "kernel: [{up:>12.6f}] eth0: link up, 1000 Mbps, full duplex",
        "systemd[1]: Started hashboard-service@{slot}.service.",
        "kernel: [{up:>12.6f}] usb 1-1.{slot}: new high-speed USB device number {n}",
        "chronyd[311]: Selected source 162.159.200.1 (pool.ntp.org)",
    ),
    "pool_sw": (
        "mcdd[412]: pool 0: share accepted (difficulty 65536)",
        "mcdd[412]: pool 0: new job received, clean_jobs=false",
        "mcdd[412]: pool 0: difficulty set to 65536",
        "mcdd[412]: pool 0: share accepted (difficulty 65536)",
    ),
    "miner_sw": (
        "hashboard-service@{slot}[520]: hb{slot} temperature {temp:.1f} C, {ths:.2f} TH/s",
        "mcdd[412]: pool 0: share accepted (difficulty 65536)",
        "psu-service[498]: psu1 output {watts:.0f} W",
        "miner-api-server[601]: GET /api/v1/mining 200",
    ),
    "miner_web_server": (
        "miner-api-server[601]: GET /api/v1/mining 200",
        "miner-api-server[601]: GET /api/v1/pools 200",
        "miner-api-server[601]: POST /api/v1/auth/login 200",
        "miner-api-server[601]: GET /api/v1/telemetry 200",
    ),
    "kernel": (
        "[{up:>12.6f}] chain[{slot}]: ASIC temperature {temp:.1f}",
        "[{up:>12.6f}] fan speed {rpm} rpm",
        "[{up:>12.6f}] bmminer: pool 0 share accepted",
        "[{up:>12.6f}] net eth0: link up",
    ),
}


def log_lines(m: Miner, source: str, count: int, now: float) -> list[str]:
    """The last `count` lines of `source`, one every few seconds since boot (at least one)."""
    templates = TEMPLATES[source]
    last = int(now) - int(now) % STEP_S
    available = max(1, int(now - m.boot_at) // STEP_S + 1)
    r = m.read(now)
    chips = r.chips
    ths = r.ths / m.model.boards
    rpm = (r.fan_rpms or [0])[0]
    watts = r.power_w / max(1, m.model.psus)
    lines = []
    for k in range(min(count, available) - 1, -1, -1):
        ts = last - k * STEP_S
        pick = int((mix(m.noise, ts) + 1) * 1000) % len(templates)
        slot = ts % m.model.boards
        text = templates[pick].format(
            up=max(0.0, ts - m.boot_at),
            slot=slot,
            n=ts % 97,
            temp=chips[slot],
            ths=ths,
            rpm=rpm,
            watts=watts,
        )
        stamp = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(text if source == "kernel" else f"{stamp} {text}")
    return lines
