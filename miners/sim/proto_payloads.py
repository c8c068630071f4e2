"""ProtoOS response bodies, shaped after the MDK OpenAPI spec (hyphenated wrapper keys and all).

Pure functions of (miner, now): the request layer in `proto.py` decides who may see them.
"""

from __future__ import annotations

import datetime
from typing import Any

from miners.sim.logs import log_lines
from miners.sim.state import Miner, mix

FIRMWARE_SW = {
    "pool_interface_sw": {"name": "mcdd", "version": "1.8.2"},
    "mining_driver_sw": {"name": "hashboard-service", "version": "1.8.2"},
    "web_server": {"name": "miner-api-server", "version": "1.8.2"},
    "web_dashboard": {"name": "miner-ui", "version": "1.8.2"},
    "hashboard_firmware": {"name": "hb-fw", "version": "2.4.1"},
}
ASIC_COLUMNS = 12
DURATIONS = {
    "1h": (3600, 60),
    "12h": (43200, 300),
    "24h": (86400, 300),
    "48h": (172800, 900),
    "5d": (432000, 3600),
}
METRICS = ("hashrate", "temperature", "power", "efficiency")


def _r(value: float, digits: int = 2) -> float:
    return round(value, digits)


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def efficiency(power_w: float, ths: float) -> float | None:
    return _r(power_w / ths) if ths > 0 else None


def mining_state(m: Miner, now: float) -> str | None:
    """ProtoOS `status`, or None while the rig has no statistics yet (answered with 204)."""
    if now < m.boot_at + m.timing.stats_delay:
        return None
    overheat = m.fault("overheat")
    if not m.pools:
        return "NoPools"
    if not m.mining_enabled:
        return "Stopped"
    if m.has_fault("dead_pool") or (overheat is not None and overheat["severity"] == "error"):
        return "Error"
    if now < m.hashing_from():
        return "PoweringOn"
    if overheat is not None or m.has_fault("dead_board"):
        return "DegradedMining"
    return "Mining"


def hostname(m: Miner) -> str:
    return str(m.setting("hostname", f"proto-{m.serial[-6:].lower()}"))


def system_info(m: Miner, now: float) -> dict[str, Any]:
    version = m.model.firmware
    body: dict[str, Any] = {
        "system-info": {
            "product_name": f"Proto {m.model.name}",
            "manufacturer": "Proto",
            "model": m.model.name,
            "cb_sn": m.serial,
            "board": "C3",
            "soc": "STM32MP157F",
            "uptime_seconds": int(now - m.boot_at),
            "os": {
                "name": "Proto Embedded Linux Distribution",
                "version": version,
                "git_hash": "c5e0a8aed4ee73fc9e04d918909dac43f3d5502a",
                "variant": "release",
                "build_datetime_utc": "20250611T101500Z",
                "machine": "c3-p1",
                "status": {
                    "mem_total_kb": 233712,
                    "mem_free_kb": 150000 + int(20000 * mix(m.noise, int(now // 60))),
                    "cpu_load_percent": _r(25 + 10 * mix(m.noise + 5, int(now // 10)), 1),
                    "rootfs_total_mb": 1024,
                    "rootfs_free_mb": 600,
                },
            },
            **FIRMWARE_SW,
            "sw_update_status": {"status": "current", "current_version": version},
        }
    }
    if m.field:  # field firmware names the host in `os` too (the spec's OSInfo has no hostname)
        body["system-info"]["os"]["hostname"] = hostname(m)
    return body


def mining_status(m: Miner, now: float) -> dict[str, Any] | None:
    status = mining_state(m, now)
    if status is None:
        return None
    r = m.read(now)
    ths, power, asic = r.ths, r.power_w, r.chips
    pcb = [t[2] for t in r.board_temps]
    elapsed = now - m.hashing_from()
    average = m.work_done(now) / elapsed if elapsed > 0 else 0.0
    hashing = r.hashing
    return {
        "mining-status": {
            "status": status,
            "mining_uptime_s": int(elapsed) if hashing else 0,
            "reboot_uptime_s": int(now - m.boot_at),
            "average_hashrate_ghs": _r(average * 1000, 1),
            "ideal_hashrate_ghs": _r(m.rate_ths() * 1000, 1),
            "power_usage_watts": _r(power, 1),
            "power_target_watts": m.power_target_w,
            "power_efficiency_jth": efficiency(power, ths) or 0.0,
            "average_hb_efficiency_jth": efficiency(power, average) or 0.0,
            "average_asic_temp_c": _r(sum(asic) / len(asic)),
            "average_hb_temp_c": _r(sum(pcb) / len(pcb)),
            "hw_errors": m.hw_errors(now),
            "hashboards_installed": m.model.boards,
            "hashboards_mining": m.alive_boards() if hashing else 0,
        }
    }


def mining_target(m: Miner) -> dict[str, Any]:
    return {
        "power_target_watts": m.power_target_w,
        "performance_mode": m.performance_mode,
        "balance_bays": bool(m.setting("balance_bays", False)),
        "hash_on_disconnect": bool(m.setting("hash_on_disconnect", False)),
        "power_target_min_watts": m.model.min_w,
        "power_target_max_watts": m.model.max_w,
        "default_power_target_watts": m.model.nominal_w,
    }


def cooling_status(m: Miner, now: float) -> dict[str, Any]:
    r = m.read(now)
    pct = r.fan_pct
    status: dict[str, Any] = {"fan_mode": m.fan_mode, "speed_percentage": pct}
    if m.fan_mode == "Auto":
        status["target_temperature_c"] = m.target_temp_c
    key = "speed_percentage" if m.field else "percentage"  # field firmware's spelling
    status["fans"] = [{"slot": i + 1, "rpm": rpm, key: pct} for i, rpm in enumerate(r.fan_rpms)]
    return {"cooling-status": status}


def pool_status(m: Miner, index: int) -> str:
    if m.has_fault("dead_pool"):
        return "Dead"
    active = m.active_pool()
    return "Active" if active is not None and m.pools[index] is active else "Idle"


def pool_entry(m: Miner, index: int, now: float, ths: float | None = None) -> dict[str, Any]:
    pool = m.pools[index]
    accepted, rejected = m.shares(pool, now)
    active = pool_status(m, index) == "Active"
    if not active:
        ths = 0.0
    elif ths is None:
        ths = m.hashrate_ths(now)
    v2 = pool.url.startswith("stratum2")
    return {
        "id": index,
        "name": pool.name,
        "priority": pool.priority,
        "url": pool.url,
        "user": pool.user,
        "status": pool_status(m, index),
        "protocol": "Stratum V2" if v2 else "Stratum V1",
        **({"v2_authority_pubkey": pool.authority_pubkey} if v2 else {}),
        "accepted": accepted,
        "rejected": rejected,
        "current_difficulty": 65536.0,
        "last_share_time": int(now) - 3 if active and accepted else 0,
        "difficulty_accepted_shares": float(accepted * 65536),
        "hashrate": [
            {"duration_minutes": 5, "hashrate_ths": _r(ths)},
            {"duration_minutes": 60, "hashrate_ths": _r(m.rate_ths() if active else 0.0)},
        ],
    }


def pools_list(m: Miner, now: float) -> dict[str, Any]:
    ths = m.hashrate_ths(now) if m.pools else 0.0
    return {"pools": [pool_entry(m, i, now, ths) for i in range(len(m.pools))]}


def hashboard_info(m: Miner, board: int) -> dict[str, Any]:
    fw = {"version": "2.4.1", "git_hash": "9f1c2d3", "image_hash": "a1b2c3d4", "build": "release"}
    return {
        "hb_sn": m.board_serial(board),
        "slot": board + 1,
        "port": board,
        "board": "B4_192",
        "chip_id": f"MC2-{board:02d}",
        "mining_asic": "MC2",
        "mining_asic_count": m.model.asics_per_board,
        "temp_sensor_count": 4,
        "api_version": "1.0",
        "firmware": fw,
        "bootloader": {**fw, "version": "1.1.0"},
        "ec_logs_path": "/var/log/ec_logs",
    }


def hashboards_info(m: Miner) -> dict[str, Any]:
    return {"hashboards-info": [hashboard_info(m, i) for i in range(m.model.boards)]}


def board_index(m: Miner, hb_sn: str) -> int | None:
    for i in range(m.model.boards):
        if m.board_serial(i) == hb_sn:
            return i
    return None


def _asic_values(m: Miner, board: int, ths: float, temp: float) -> list[tuple[float, float]]:
    """(hashrate TH/s, temperature °C) per ASIC, spread deterministically around the board
    figures: the offsets are centred, so the chips' hashrates sum to the board's (the spec:
    a board's `hashrate_ghs` "will be sum of all ASIC hashrate_ghs values") and their
    temperatures average to the board's `avg_asic_temp_c`."""
    n = m.model.asics_per_board
    seed = m.noise + 131 * board
    rate = [mix(seed, a) for a in range(n)]
    heat = [mix(seed + 7, a) for a in range(n)]
    rate_mean, heat_mean = sum(rate) / n, sum(heat) / n
    return [
        (ths / n * (1 + 0.03 * (r - rate_mean)), temp + 4.0 * (h - heat_mean))
        for r, h in zip(rate, heat, strict=True)
    ]


def asic_stats(
    m: Miner,
    board: int,
    asic: int,
    ths: float,
    temp: float,
    values: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    a_ths, a_temp = (values or _asic_values(m, board, ths, temp))[asic]
    ideal = m.rate_ths() / m.model.boards / m.model.asics_per_board
    return {
        "index": asic,
        "id": f"{chr(65 + asic // ASIC_COLUMNS)}{asic % ASIC_COLUMNS}",
        "row": asic // ASIC_COLUMNS,
        "column": asic % ASIC_COLUMNS,
        "freq_mhz": 650.0 if a_ths else 0.0,
        "temp_c": _r(a_temp),
        "voltage_mv": 308.4 if a_ths else 0.0,
        "hashrate_ghs": _r(a_ths * 1000),
        "ideal_hashrate_ghs": _r(ideal * 1000),
        "error_rate": _r(abs(mix(m.noise + board, asic)) * 0.5),
    }


def hashboard_stats(m: Miner, board: int, now: float, asics: bool = True) -> dict[str, Any]:
    """`/hashboards/{hb_sn}`: the board's ASIC average and maximum are those of its chips (the
    same chips `/telemetry?level=asic` lists), not a fixed offset."""
    r = m.read(now)
    ths, power, chip = r.board_ths[board], r.board_w[board], r.chips[board]
    inlet, outlet, _ = r.board_temps[board]
    values = _asic_values(m, board, ths, chip)
    overheated = m.has_fault("overheat")
    status = "Running" if ths > 0 else ("Error" if board == m.dead_board() else "Stopped")
    stats: dict[str, Any] = {
        "hb_sn": m.board_serial(board),
        "slot": board + 1,
        "status": "Overheated" if overheated else status,
        "power_usage_watts": _r(power, 1),
        "voltage_mv": 16200.0 if ths else 0.0,
        "avg_asic_temp_c": chip,
        "max_asic_temp_c": _r(max(v[1] for v in values)),
        "hashrate_ghs": _r(ths * 1000, 1),
        "ideal_hashrate_ghs": _r(m.rate_ths() / m.model.boards * 1000, 1),
        "efficiency_jth": efficiency(power, ths),
        "inlet_temp_c": inlet,
        "outlet_temp_c": outlet,
    }
    if asics:
        stats["asics"] = [
            asic_stats(m, board, a, ths, chip, values) for a in range(m.model.asics_per_board)
        ]
    return {"hashboard-stats": stats}


def psu_info(m: Miner, slot: int, power_w: float, state: bool = False) -> dict[str, Any]:
    """PSU `slot` (0-based here; the rig numbers slots from 1). A failed PSU delivers nothing,
    the others share its load. `state` adds the field firmware's `state` (not in the spec)."""
    failed = m.failed_psu()
    working = m.model.psus - (failed is not None)
    share = 0.0 if slot == failed or not working else power_w / working
    info: dict[str, Any] = {
        "psu_sn": f"PSU{m.serial[2:8]}{m.index % 100000:05d}{slot}",
        "slot": slot + 1,
        "manufacturer": "Chicony",
        "hw_revision": "v1.0",
        "model": "S24",
        "vendor": "Chicony",
        "firmware": {"app_version": "1.18.22", "bootloader_version": "1.0"},
        "power": {
            "input_voltage_mv": 230000.0,
            "output_voltage_mv": 15380.0,
            "input_current_ma": _r(share / 0.96 / 230 * 1000, 1),
            "output_current_ma": _r(share / 15.38 * 1000, 1),
            "input_power_mw": _r(share / 0.96 * 1000, 1),
            "output_power_mw": _r(share * 1000, 1),
        },
        "temperatures": [
            {"temperature_type": "hotspot", "temperature_c": _r(m.ambient_c + 20 + share / 200)},
            {"temperature_type": "ambient", "temperature_c": _r(m.ambient_c + 5)},
        ],
    }
    if state:
        info["state"] = "Error" if slot == failed else "Running"
    return info


def psus(m: Miner, now: float, state: bool = False) -> list[dict[str, Any]]:
    power = m.power_w(now)
    return [psu_info(m, i, power, state) for i in range(m.model.psus)]


def hardware_info(m: Miner, now: float) -> dict[str, Any]:
    return {
        "hardware-info": {
            "hashboards-info": hashboards_info(m)["hashboards-info"],
            "psus-info": psus(m, now),
            "fans-info": [
                {
                    "slot": i + 1,
                    "name": f"Fan {i + 1}",
                    "min_rpm": 1000,
                    "max_rpm": m.model.fan_max_rpm,
                }
                for i in range(m.model.fans)
            ],
            "cb-info": {
                "machine_name": "c3-p1",
                "board_id": "8",
                "serial_number": m.serial,
                "firmware": {
                    "name": "Proto Embedded Linux Distribution",
                    "version": m.model.firmware,
                    "variant": "release",
                },
            },
        }
    }


def network_info(m: Miner) -> dict[str, Any]:
    return {
        "network-info": {
            "mac": m.mac,
            "dhcp": bool(m.setting("dhcp", True)),
            "ip": m.host,
            "netmask": "255.0.0.0",
            "gateway": "127.0.0.1",
            "hostname": hostname(m),
        }
    }


def _metric(value: float, unit: str) -> dict[str, Any]:
    return {"value": _r(value), "unit": unit}


def telemetry(m: Miner, levels: set[str], now: float) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": iso(now)}
    r = m.read(now)
    ths, power, chips = r.ths, r.power_w, r.chips
    if "miner" in levels:
        body["miner"] = {
            "hashrate": _metric(ths, "TH/s"),
            "temperature": _metric(sum(chips) / len(chips), "°C"),
            "power": _metric(power, "W"),
            "efficiency": _metric(efficiency(power, ths) or 0.0, "J/TH"),
        }
    if levels & {"hashboard", "asic"}:
        board_ths, board_w = r.board_ths, r.board_w
        boards = []
        for i, (inlet, outlet, pcb) in enumerate(r.board_temps):
            volts = 16.2 if board_ths[i] else 0.0
            entry: dict[str, Any] = {
                "index": i,
                "serial_number": m.board_serial(i),
                "hashrate": _metric(board_ths[i], "TH/s"),
                "temperature": {"unit": "°C", "inlet": inlet, "outlet": outlet, "average": pcb},
                "power": _metric(board_w[i], "W"),
                "efficiency": _metric(efficiency(board_w[i], board_ths[i]) or 0.0, "J/TH"),
                "voltage": _metric(volts, "V"),
                "current": _metric(board_w[i] / volts if volts else 0.0, "A"),
            }
            if "asic" in levels:
                values = _asic_values(m, i, board_ths[i], chips[i])
                entry["asics"] = {
                    "hashrate": {"unit": "TH/s", "values": [_r(v[0], 4) for v in values]},
                    "temperature": {"unit": "°C", "values": [_r(v[1], 1) for v in values]},
                }
            boards.append(entry)
        body["hashboards"] = boards
    if "psu" in levels:
        body["psus"] = [_psu_telemetry(p, i) for i, p in enumerate(psus(m, now))]
    return body


def _psu_telemetry(p: dict[str, Any], index: int) -> dict[str, Any]:
    pw = p["power"]
    temps = {t["temperature_type"]: t["temperature_c"] for t in p["temperatures"]}
    return {
        "index": index,
        "serial_number": p["psu_sn"],
        "voltage": {
            "unit": "V",
            "input": pw["input_voltage_mv"] / 1000,
            "output": pw["output_voltage_mv"] / 1000,
        },
        "current": {
            "unit": "A",
            "input": _r(pw["input_current_ma"] / 1000),
            "output": _r(pw["output_current_ma"] / 1000),
        },
        "power": {
            "unit": "W",
            "input": _r(pw["input_power_mw"] / 1000),
            "output": _r(pw["output_power_mw"] / 1000),
        },
        "temperature": {
            "unit": "°C",
            "hotspot": temps["hotspot"],
            "ambient": temps["ambient"],
            "average": _r((temps["hotspot"] + temps["ambient"]) / 2),
        },
    }


def errors(m: Miner, now: float) -> list[dict[str, Any]]:
    """Active notifications: one per fault a real rig would report on its own."""
    out: list[dict[str, Any]] = []
    overheat = m.fault("overheat")
    if overheat is not None:
        for i, temp in enumerate(m.asic_temps_c(now)):
            out.append(
                {
                    "source": "hashboard",
                    "slot": i + 1,
                    "error_code": "OverTemperature",
                    "timestamp": overheat["since"],
                    "message": f"Hashboard {i + 1} ASIC temperature {temp:.1f} °C "
                    "exceeds the limit",
                }
            )
    dead = m.fault("dead_board")
    if dead is not None:
        slot = (m.dead_board() or 0) + 1
        out.append(
            {
                "source": "hashboard",
                "slot": slot,
                "error_code": "HashboardNotHashing",
                "timestamp": dead["since"],
                "message": f"Hashboard {slot} stopped hashing",
            }
        )
    psu = m.fault("psu_fault")
    if psu is not None and not m.field:  # field firmware shows it only in /power-supplies
        slot = (m.failed_psu() or 0) + 1
        out.append(
            {
                "source": "psu",
                "slot": slot,
                "error_code": "PsuFault",
                "timestamp": psu["since"],
                "message": f"PSU {slot} failed: no output",
            }
        )
    dead_pool = m.fault("dead_pool")
    if dead_pool is not None:
        out.append(
            {
                "source": "rig",
                "slot": 0,
                "error_code": "PoolConnectionFailed",
                "timestamp": dead_pool["since"],
                "message": "Unable to connect to any configured pool",
            }
        )
    return out


def _value_at(m: Miner, metric: str, t: float, board: int | None) -> float | None:
    r = m.read(t)
    if board is None:
        ths, power, temp = r.ths, r.power_w, sum(r.chips) / len(r.chips)
    else:
        ths, power, temp = r.board_ths[board], r.board_w[board], r.chips[board]
    if metric == "hashrate":
        return _r(ths, 3)
    if metric == "power":
        return _r(power, 1)
    if metric == "temperature":
        return _r(temp)
    return efficiency(power, ths)


def series(m: Miner, metric: str, duration: str, now: float, board: int | None) -> dict[str, Any]:
    span, step = DURATIONS[duration]
    end = int(now) - int(now) % step
    data = [
        {"datetime": t, "value": _value_at(m, metric, t, board)}
        for t in range(end - span + step, end + 1, step)
    ]
    values = [d["value"] for d in data if d["value"] is not None]
    aggregates: dict[str, Any] = {
        "min": min(values) if values else 0.0,
        "avg": _r(sum(values) / len(values)) if values else None,
        "max": max(values) if values else None,
    }
    return {f"{metric}-data": {"duration": duration, "data": data, "aggregates": aggregates}}


def logs(m: Miner, source: str, lines: int, now: float) -> dict[str, Any]:
    content = log_lines(m, source, lines, now)
    return {"logs": {"source": source, "lines": len(content), "content": content}}
