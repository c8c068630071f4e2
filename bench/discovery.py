"""`python -m bench.discovery [--quick]`: the scanner (`miners.scan`) over a /20 — 4,096
addresses x every driver's default ports — holding 1,000 simulated miners (half ProtoOS, half
stock Antminer, factory state) with every other address refusing; side by side with
pyasic-rs's own subnet scan (`MinerFactory.from_subnet(...).scan()`) of the same /20, and
`nmap -sT` over the same addresses and ports as the floor (a bare TCP connect scan: no
identification at all).

The simulator runs in its own processes on a free 127.x /20 (real ports: pyasic-rs knows no
others, so this needs root). Our scanner runs on uvloop, as the Celery worker's miner loop
does (`fleet.runtime`); pyasic-rs runs in a subprocess (it has aborted interpreters at exit).
Each contender gets the box to itself, one after the other. "Misses" are simulated miner
ports not reported; "false positives" reports of anything else. Prints one JSON object on its
last line. Everything it starts is stopped, also on errors.

Scope: scan + identify only. Ingest and live events belong to the Django side
(`discovery/`), not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._django import ROOT, proc_cpu, stop_process
from bench._django import start_simulator as _start_simulator

TARGET = {"full_run_s": 5.0, "misses": 0, "false_positives": 0}
PYASIC_BUDGET_S = 300.0


def children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def listening_addresses() -> set[ipaddress.IPv4Address]:
    """Every IPv4 address something listens on (from /proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            raw = bytes.fromhex(fields[1].split(":")[0])[::-1]
            found.add(ipaddress.IPv4Address(raw))
    return found


def free_block() -> ipaddress.IPv4Network:
    """A 127.x /20 where nothing listens (other benches and tests use 127.77-78 and
    127.100-250)."""
    busy = listening_addresses()
    for _ in range(200):
        network = ipaddress.IPv4Network(
            f"127.{random.randint(20, 69)}.{16 * random.randint(0, 15)}.0/20"
        )
        if not any(address in network for address in busy):
            return network
    raise RuntimeError("no free 127.x /20 on this box")


def start_simulator(
    network: ipaddress.IPv4Network, proto: int, antminer: int, processes: int, workdir: str
) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]]]:
    base = str(network.network_address + 1)
    spec = {"proto": proto, "antminer": antminer, "base": base, "stats_delay": 0.0}
    return _start_simulator(spec, processes, workdir, "--default-password")


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 15)


def expected_ports(inventory: list[dict[str, Any]], ports: list[int]) -> set[tuple[str, int]]:
    return {(e["host"], p) for e in inventory for p in e["ports"].values() if p in ports}


# --- ours -------------------------------------------------------------------------------------
async def _scan_ours(
    targets: list[tuple[str, int]], concurrency: int
) -> tuple[list[Any], float, float | None]:
    from miners.scan import scan

    found = []
    first: float | None = None
    started = time.monotonic()
    async for item in scan(targets, concurrency=concurrency):
        if first is None:
            first = time.monotonic() - started
        found.append(item)
    return found, time.monotonic() - started, first


def measure_ours(
    network: ipaddress.IPv4Network,
    ports: list[int],
    inventory: list[dict[str, Any]],
    sim_pid: int,
    concurrency: int,
) -> dict[str, Any]:
    import uvloop

    targets = [(str(a), p) for a in network for p in ports]
    expected = expected_ports(inventory, ports)
    kinds = {e["host"]: e["kind"] for e in inventory}
    cpu, sim_cpu = time.process_time(), proc_tree_cpu(sim_pid)
    found, wall, first = uvloop.run(_scan_ours(targets, concurrency))
    cpu, sim_cpu = time.process_time() - cpu, proc_tree_cpu(sim_pid) - sim_cpu
    got = {(f.host, f.port) for f in found}
    incomplete: dict[str, int] = {}
    for f in found:
        if kinds.get(f.host) not in (None, f.driver):
            key = f"{kinds.get(f.host)}:{f.port} as {f.driver}"
        elif not (f.serial and f.mac and f.model and f.firmware):
            key = f"{f.driver}:{f.port} without " + "/".join(
                name for name in ("serial", "mac", "model", "firmware") if not getattr(f, name)
            )
        else:
            continue
        incomplete[key] = incomplete.get(key, 0) + 1
    return {
        "concurrency": concurrency,
        "targets": len(targets),
        "wall_s": round(wall, 2),
        "first_result_s": round(first, 3) if first is not None else None,
        "targets_per_s": round(len(targets) / wall),
        "client_cpu_s": round(cpu, 2),
        "simulator_cpu_s": round(sim_cpu, 2),
        "found_ports": len(got),
        "found_miners": len({h for h, _ in got}),
        "misses": len(expected - got),
        "false_positives": len(got - expected),
        "incomplete_or_wrong_identity": incomplete,
    }


def proc_tree_cpu(pid: int) -> float:
    """CPU of `pid` and its children (the simulator's shard processes)."""
    total = proc_cpu(pid)
    for child in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += proc_cpu(int(child.name))
    return total


# --- pyasic-rs ----------------------------------------------------------------------------------
async def pyasic_worker(args: argparse.Namespace) -> None:
    """Subprocess side: pyasic-rs scans the /20 with its own factory, as its README shows."""
    from pyasic_rs import MinerFactory

    factory = (
        MinerFactory.from_subnet(args.network)
        .with_concurrent_limit(args.concurrency)
        .with_firmware_discovery_auth("AntMiner Stock", "root", "root")
    )
    started = time.monotonic()
    cpu = time.process_time()
    hosts = []
    first = None
    error = None
    try:
        async with asyncio.timeout(PYASIC_BUDGET_S):
            async for miner in factory.scan_stream():
                if first is None:
                    first = time.monotonic() - started
                hosts.append(str(miner.ip))
    except TimeoutError:
        error = f"not done within {PYASIC_BUDGET_S:g} s"
    except Exception as exc:  # whatever the library raises is reported, not hidden
        error = f"{type(exc).__name__}: {exc}"
    result = {
        "wall_s": round(time.monotonic() - started, 2),
        "first_result_s": round(first, 3) if first is not None else None,
        "client_cpu_s": round(time.process_time() - cpu, 2),
        "hosts": hosts,
        "error": error,
    }
    print(json.dumps(result), flush=True)


def measure_pyasic(
    network: ipaddress.IPv4Network, inventory: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.discovery", "--pyasic-worker", "--network",
           str(network), "--concurrency", str(concurrency)]  # fmt: skip
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=PYASIC_BUDGET_S + 60
        )
    except subprocess.TimeoutExpired:
        return {"error": "pyasic-rs worker timed out"}
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"error": f"pyasic-rs worker printed nothing (exit {out.returncode})"}
    result: dict[str, Any] = json.loads(lines[-1])
    hosts = set(result.pop("hosts"))
    miners = {e["host"] for e in inventory}
    by_kind = {
        kind: sum(1 for e in inventory if e["kind"] == kind and e["host"] in hosts)
        for kind in ("protoos", "antminer")
    }
    result.update(
        concurrency=concurrency,
        found_miners=len(hosts),
        found_by_kind=by_kind,
        misses=len(miners - hosts),
        false_positives=len(hosts - miners),
    )
    return result


# --- nmap -------------------------------------------------------------------------------------
def measure_nmap(
    network: ipaddress.IPv4Network, ports: list[int], inventory: list[dict[str, Any]]
) -> dict[str, Any]:
    nmap = shutil.which("nmap")
    if nmap is None:
        return {"error": "nmap is not installed (apt-get install nmap)"}
    cmd = [nmap, "-sT", "-n", "-Pn", "-T5", "-p", ",".join(map(str, ports)), "-oG", "-",
           str(network)]  # fmt: skip
    before = children_cpu()
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    open_ports = set()
    for line in out.stdout.splitlines():
        match = re.match(r"Host: (\S+) .*Ports: (.*)", line)
        if match:
            for entry in match.group(2).split(","):
                port, state = entry.strip().split("/")[:2]
                if state == "open":
                    open_ports.add((match.group(1), int(port)))
    expected = expected_ports(inventory, ports)
    return {
        "command": " ".join(cmd[1:]),
        "wall_s": round(wall, 2),
        "cpu_s": round(children_cpu() - before, 2),
        "open_ports": len(open_ports),
        "misses": len(expected - open_ports),
        "extra_open": len(open_ports - expected),
    }


# --- the run --------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise SystemExit("bench.discovery needs root: pyasic-rs only talks to the real ports")
    from miners.scan import default_registry

    total = args.miners or (200 if args.quick else 1000)
    proto = total // 2
    antminer = total - proto
    ports = default_registry().ports()
    network = free_block()
    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as workdir:
        clock = time.monotonic()
        sim, inventory = start_simulator(network, proto, antminer, args.sim_processes, workdir)
        setup = {"simulator_start_s": round(time.monotonic() - clock, 1)}
        try:
            ours = [measure_ours(network, ports, inventory, sim.pid, c) for c in args.concurrency]
            complete = [r for r in ours if r["misses"] == 0] or ours
            best = min(complete, key=lambda r: r["wall_s"])
            reference = (
                measure_pyasic(network, inventory, args.pyasic_concurrency)
                if not args.no_reference
                else {"skipped": True}
            )
            floor = (
                measure_nmap(network, ports, inventory) if not args.no_nmap else {"skipped": True}
            )
        finally:
            stop(sim)
            sim_log = Path(workdir, "simulator.log").read_text(errors="replace").splitlines()
    return {
        "bench": "discovery",
        "mode": "quick" if args.quick else "full",
        "network": str(network),
        "addresses": network.num_addresses,
        "ports": ports,
        "miners": {"protoos": proto, "antminer": antminer},
        "setup": setup,
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "simulator_log": {"lines": len(sim_log), "last": sim_log[-1][-200:] if sim_log else ""},
        "ours": ours,
        "ours_best_concurrency": best["concurrency"],
        "pyasic_rs": reference,
        "nmap": floor,
        "ratio": {
            "pyasic_time_over_ours": ratio(reference.get("wall_s"), best["wall_s"]),
            "pyasic_cpu_over_ours": ratio(reference.get("client_cpu_s"), best["client_cpu_s"]),
            "ours_time_over_nmap": ratio(best["wall_s"], floor.get("wall_s")),
        },
        "target": TARGET,
        "scan_target_met": best["wall_s"] <= TARGET["full_run_s"]
        and best["misses"] == 0
        and best["false_positives"] == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 miners (< 1 min)")
    parser.add_argument("--miners", type=int, help="simulated miners (default 1,000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[256, 1024],
                        help="our scanner's worker counts to measure (default 256 1024)")  # fmt: skip
    parser.add_argument("--pyasic-concurrency", type=int, default=256)
    parser.add_argument("--sim-processes", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="skip pyasic-rs")
    parser.add_argument("--no-nmap", action="store_true", help="skip nmap")
    parser.add_argument("--pyasic-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--network", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pyasic_worker:
        args.concurrency = args.concurrency[0]
        asyncio.run(pyasic_worker(args))
        sys.stdout.flush()
        os._exit(0)  # pyasic-rs may abort the interpreter during finalisation
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
