"""Stock Antminer (bmminer) figures, shaped for the CGMiner RPC and the web CGI alike.

Both channels of a real Antminer report the same numbers in different dialects, so the
figures are computed once (`Figures`) and rendered twice.
"""

from __future__ import annotations

from typing import Any

from miners.sim.state import Miner, drift

BMMINER_VERSION = "1.0.0"
MINER_VERSION = "uart_trans.1.3"
DESCRIPTION = f"bmminer {BMMINER_VERSION}"
DIFFICULTY = 65536.0


class Figures:
    """Everything a summary/stats/devs reply needs, read from the miner once per request."""

    __slots__ = (
        "accepted",
        "chain_ths",
        "chips",
        "elapsed",
        "fans",
        "ghs_5s",
        "ghs_30m",
        "ghs_av",
        "hashing",
        "hw",
        "ideal_ghs",
        "pcb",
        "power_w",
        "rejected",
        "work",
    )

    def __init__(self, m: Miner, now: float) -> None:
        self.elapsed = max(0, int(now - m.boot_at))
        r = m.read(now)
        self.hashing = r.hashing
        self.ghs_5s = round(r.ths * 1000, 2)
        self.work = m.work_done(now)
        hashed_for = now - m.hashing_from()
        self.ghs_av = round(self.work / hashed_for * 1000, 2) if hashed_for > 0 else 0.0
        rate = m.rate_ths() if self.hashing else 0.0
        self.ghs_30m = round(rate * 1000 * (1 + 0.005 * drift(m.noise + 3, now)), 2)
        self.ideal_ghs = round(m.rate_ths() * 1000, 2)
        totals = [m.shares(p, now) for p in m.pools]
        self.accepted = sum(a for a, _ in totals)
        self.rejected = sum(r for _, r in totals)
        self.hw = m.hw_errors(now)
        self.chain_ths = r.board_ths
        self.chips = r.chips
        self.pcb = [t[2] for t in r.board_temps]
        self.fans = r.fan_rpms
        self.power_w = r.power_w


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def version(m: Miner) -> dict[str, Any]:
    return {
        "BMMiner": BMMINER_VERSION,
        "API": "3.1",
        "Miner": MINER_VERSION,
        "CompileTime": m.model.firmware,
        "Type": m.model.name,
    }


def summary(m: Miner, f: Figures, now: float) -> dict[str, Any]:
    minutes = max(f.elapsed / 60, 1 / 60)
    diff_acc = f.accepted * DIFFICULTY
    diff_rej = f.rejected * DIFFICULTY
    return {
        "Elapsed": f.elapsed,
        "GHS 5s": f.ghs_5s,
        "GHS av": f.ghs_av,
        "GHS 30m": f.ghs_30m,
        "Found Blocks": 0,
        "Getworks": f.elapsed // 30,
        "Accepted": f.accepted,
        "Rejected": f.rejected,
        "Hardware Errors": f.hw,
        "Utility": round(f.accepted / minutes, 2),
        "Discarded": f.elapsed * 2 if f.hashing else 0,
        "Stale": 0,
        "Get Failures": 0,
        "Local Work": int(f.work * 10),
        "Remote Failures": 0,
        "Network Blocks": f.elapsed // 600,
        "Total MH": round(f.work * 1e6, 0),
        "Work Utility": round(f.work * 1000 / minutes / 4.295, 2),
        "Difficulty Accepted": diff_acc,
        "Difficulty Rejected": diff_rej,
        "Difficulty Stale": 0.0,
        "Best Share": int(diff_acc * 3.7) if f.accepted else 0,
        "Device Hardware%": _pct(f.hw, f.hw + f.work * 10),
        "Device Rejected%": _pct(diff_rej, diff_acc + diff_rej),
        "Pool Rejected%": _pct(diff_rej, diff_acc + diff_rej),
        "Pool Stale%": 0.0,
        "Last getwork": int(now),
    }


def pools(m: Miner, now: float) -> list[dict[str, Any]]:
    active = m.active_pool()
    dead = m.has_fault("dead_pool")
    result = []
    for i, pool in enumerate(m.pools):
        accepted, rejected = m.shares(pool, now)
        is_active = pool is active
        host = pool.url.split("://", 1)[-1]
        result.append(
            {
                "POOL": i,
                "URL": pool.url,
                "Status": "Dead" if dead or not pool.enabled else "Alive",
                "Priority": i,
                "Quota": 1,
                "Long Poll": "N",
                "Getworks": int(now - m.boot_at) // 30 if is_active else 0,
                "Accepted": accepted,
                "Rejected": rejected,
                "Discarded": 0,
                "Stale": 0,
                "Get Failures": 0,
                "Remote Failures": 0,
                "User": pool.user,
                "Last Share Time": int(now) - 2 if is_active and accepted else 0,
                "Diff": "65.5K",
                "Diff1 Shares": 0,
                "Proxy Type": "",
                "Proxy": "",
                "Difficulty Accepted": accepted * DIFFICULTY,
                "Difficulty Rejected": rejected * DIFFICULTY,
                "Difficulty Stale": 0.0,
                "Last Share Difficulty": DIFFICULTY if accepted else 0.0,
                "Has Stratum": True,
                "Stratum Active": is_active,
                "Stratum URL": host.split(":")[0] if is_active else "",
                "Has GBT": False,
                "Best Share": int(accepted * DIFFICULTY * 3.7),
                "Pool Rejected%": _pct(rejected, accepted + rejected),
                "Pool Stale%%": 0.0,
            }
        )
    return result


def devs(m: Miner, f: Figures, now: float) -> list[dict[str, Any]]:
    dead = m.dead_board()
    share = f.accepted // max(1, m.alive_boards())
    return [
        {
            "ASC": i,
            "Name": "BTM_SOC",
            "ID": i,
            "Enabled": "Y",
            "Status": "Dead" if i == dead else "Alive",
            "Temperature": f.chips[i],
            "MHS av": round(f.ghs_av / m.model.boards * 1000 if i != dead else 0.0, 2),
            "MHS 5s": round(ths * 1e6, 2),
            "Accepted": share if i != dead else 0,
            "Rejected": 0,
            "Hardware Errors": f.hw // m.model.boards,
            "Utility": 0.0,
            "Last Share Pool": 0,
            "Last Share Time": int(now) - 2 if ths else 0,
            "Total MH": round(f.work * 1e6 / m.model.boards, 0),
            "Diff1 Work": 0,
            "Difficulty Accepted": share * DIFFICULTY,
            "Difficulty Rejected": 0.0,
            "Last Share Difficulty": DIFFICULTY,
            "No Device": False,
            "Last Valid Work": int(now),
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.0,
            "Device Elapsed": f.elapsed,
        }
        for i, ths in enumerate(f.chain_ths)
    ]


def devdetails(m: Miner) -> list[dict[str, Any]]:
    return [
        {
            "DEVDETAILS": i,
            "Name": "BTM_SOC",
            "ID": i,
            "Driver": "bitmain_soc",
            "Kernel": "",
            "Model": m.model.name,
            "Device Path": "",
        }
        for i in range(m.model.boards)
    ]


def _dashed(values: list[float]) -> str:
    return "-".join(str(round(v)) for v in values)


def stats(m: Miner, f: Figures) -> list[dict[str, Any]]:
    """bmminer `stats`: a version object, then one flat object with numbered per-chain keys."""
    detail: dict[str, Any] = {
        "STATS": 0,
        "ID": "BTM_SOC0",
        "Elapsed": f.elapsed,
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
        "GHS 5s": f.ghs_5s,
        "GHS av": f.ghs_av,
        "rate_30m": f.ghs_30m,
        "Mode": 2,
        "miner_count": m.model.boards,
        "frequency": 525 if f.hashing else 0,
        "fan_num": len(f.fans),
    }
    for i, rpm in enumerate(f.fans, 1):
        detail[f"fan{i}"] = rpm
    detail["temp_num"] = m.model.boards
    for i, (chip, pcb) in enumerate(zip(f.chips, f.pcb, strict=True), 1):
        detail[f"temp{i}"] = round(pcb)
        detail[f"temp2_{i}"] = round(chip)
        detail[f"temp_pcb{i}"] = _dashed([pcb - 2, pcb - 2, pcb + 3, pcb + 3])
        detail[f"temp_chip{i}"] = _dashed([chip - 4, chip - 4, chip + 4, chip + 4])
    detail.update(
        {
            "total_rateideal": f.ideal_ghs,
            "rate_unit": "GH/s",
            "total_freqavg": 525.0 if f.hashing else 0.0,
            "total_acn": m.model.asics_per_board * m.alive_boards(),
            "total rate": f.ghs_5s,
            "temp_max": round(max(f.chips)),
            # stock firmware since 2022 reports the PSU's measured draw as a string with a unit
            "chain_power": f"{round(f.power_w)} W",
            "no_matching_work": 0,
        }
    )
    dead = m.dead_board()
    per_ideal = f.ideal_ghs / m.model.boards
    for i, ths in enumerate(f.chain_ths, 1):
        alive = i - 1 != dead
        detail[f"chain_acn{i}"] = m.model.asics_per_board if alive else 0
        detail[f"chain_acs{i}"] = _acs(m.model.asics_per_board if alive else 0)
        detail[f"chain_hw{i}"] = f.hw // m.model.boards if alive else 0
        detail[f"chain_rate{i}"] = f"{ths * 1000:.2f}"  # a string, as bmminer sends it
        detail[f"chain_rateideal{i}"] = round(per_ideal, 2) if alive else 0.0
        detail[f"freq{i}"] = 525 if alive and f.hashing else 0
    detail["miner_version"] = MINER_VERSION
    detail["miner_id"] = f"80{m.serial[-14:].lower()}"
    return [version(m), detail]


def _acs(count: int) -> str:
    """bmminer's chip map: groups of eight 'o' separated by spaces."""
    return " ".join("o" * min(8, count - k) for k in range(0, count, 8))


def config(m: Miner) -> list[dict[str, Any]]:
    return [
        {
            "ASC Count": m.model.boards,
            "PGA Count": 0,
            "Pool Count": len(m.pools),
            "Strategy": "Failover",
            "Log Interval": 5,
            "Device Code": "",
            "OS": "Linux",
            "Hotplug": "None",
        }
    ]


def coin(now: float) -> list[dict[str, Any]]:
    return [
        {
            "Hash Method": "sha256",
            "Current Block Time": float(int(now) - int(now) % 600),
            "Current Block Hash": "0" * 20 + f"{int(now) // 600:044x}",
            "LP": True,
            "Network Difficulty": 1.1e14,
        }
    ]
