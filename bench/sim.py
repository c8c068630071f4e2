"""`python -m bench.sim [--quick]`: our drivers polling a simulated fleet, side by side with
pyasic-rs `get_data` over the same miners at the same concurrency.

Starts `python -m miners.sim` in its own process on a loopback block, then for each kind of
miner measures, over a fixed time window: polls/s, client CPU per poll (this process), the
simulator's CPU per request (from /proc), and the same for pyasic-rs in a subprocess (it has
aborted interpreters at exit, so it never loads here). Prints one JSON object on its last
line. Everything it starts is stopped, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench._django import stop_process
from miners import (
    AntminerDriver,
    Credentials,
    Detail,
    Device,
    DeviceInfo,
    HttpClient,
    MinerError,
    ProtoOSDriver,
)

PASSWORD = "bench-sim-pw"
ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of another process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class CountingHttp(HttpClient):
    requests = 0

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.requests += 1
        return await super().request(method, url, **kwargs)


async def hammer(
    targets: list[Any], poll: Callable[[Any], Awaitable[Any]], seconds: float, concurrency: int
) -> dict[str, float]:
    """Poll `targets` round-robin with `concurrency` workers for `seconds`."""
    polls = errors = 0
    deadline = time.monotonic() + seconds
    cursor = iter(range(1 << 62))

    async def worker() -> None:
        nonlocal polls, errors
        while time.monotonic() < deadline:
            target = targets[next(cursor) % len(targets)]
            try:
                await poll(target)
                polls += 1
            except MinerError:
                errors += 1

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {
        "polls": polls,
        "errors": errors,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "polls_per_s": round(polls / wall, 1),
        "client_cpu_us_per_poll": round(cpu / max(1, polls) * 1e6),
    }


def connect_all(inventory: list[dict[str, Any]], kind: str, http: HttpClient) -> list[Device]:
    creds = Credentials(password=PASSWORD)
    if kind == "protoos":
        proto = ProtoOSDriver(http)
        return [
            proto.connect(
                DeviceInfo(
                    "protoos", e["host"], e["ports"]["https"], "Proto", e["model"], scheme="https"
                ),
                creds,
            )
            for e in inventory
            if e["kind"] == kind
        ]
    antminer = AntminerDriver(http)
    return [
        antminer.connect(
            DeviceInfo(
                "antminer",
                e["host"],
                e["ports"]["rpc"],
                "Bitmain",
                e["model"],
                ports={"rpc": e["ports"]["rpc"], "web": e["ports"]["http"]},
            ),
            creds,
        )
        for e in inventory
        if e["kind"] == kind
    ]


async def measure_ours(
    inventory: list[dict[str, Any]], sim_pid: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    http = CountingHttp(limit_per_host=2)
    try:
        for kind in ("protoos", "antminer"):
            devices = connect_all(inventory, kind, http)
            await asyncio.gather(*(d.status(Detail.FULL) for d in devices))  # logins, warm pool
            for detail in (Detail.SUMMARY, Detail.FULL):
                http.requests = 0
                sim_cpu = proc_cpu(sim_pid)
                poll = functools.partial(Device.status, detail=detail)
                run = await hammer(devices, poll, seconds, concurrency)
                rpc_per_poll = 1 if kind == "antminer" else 0
                requests = http.requests + rpc_per_poll * (run["polls"] + run["errors"])
                run.update(
                    requests_per_poll=round(requests / max(1, run["polls"] + run["errors"]), 2),
                    sim_requests_per_s=round(requests / run["wall_s"], 1),
                    sim_cpu_us_per_request=round(
                        (proc_cpu(sim_pid) - sim_cpu) / max(1, requests) * 1e6
                    ),
                )
                results[f"{kind}_{detail.value}"] = run
    finally:
        await http.close()
    return results


async def pyasic_worker(args: argparse.Namespace) -> None:
    """Subprocess side: pyasic-rs handles for every miner of a kind, then get_data in a loop."""
    from pyasic_rs import MinerFactory

    inventory = [e for e in json.loads(Path(args.inventory).read_text()) if e["kind"] == args.kind]
    factory = MinerFactory().with_firmware_discovery_auth("AntMiner Stock", "root", PASSWORD)
    gate = asyncio.Semaphore(args.concurrency)

    async def identify(host: str) -> Any:
        async with gate:  # all at once, its identification times out on a busy box
            for _attempt in range(3):
                miner = await factory.get_miner(host)
                if miner is not None:
                    return miner
        return None

    miners = await asyncio.gather(*(identify(e["host"]) for e in inventory))
    handles = [m for m in miners if m is not None]
    for miner in handles:
        miner.set_auth("root", PASSWORD)
    await asyncio.gather(*(m.get_data() for m in handles))  # warm-up, logins

    async def poll(miner: Any) -> None:
        data = await asyncio.wait_for(miner.get_data(), 10)
        if data.hashrate is None:
            raise MinerError("empty snapshot")

    run = await hammer(handles, poll, args.seconds, args.concurrency)
    run.update(identified=len(handles), of=len(inventory))
    print(json.dumps(run), flush=True)


def measure_pyasic(
    inventory_file: str, kind: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.sim", "--pyasic-worker", "--inventory", inventory_file,
           "--kind", kind, "--seconds", str(seconds), "--concurrency", str(concurrency)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"error": f"pyasic-rs worker printed nothing (exit {out.returncode})"}
    run: dict[str, Any] = json.loads(lines[-1])
    return run


def start_simulator(proto: int, antminer: int, workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    """The simulator on the real ports (pyasic-rs can't be told others) of a random /16."""
    base = f"127.{random.randint(160, 250)}.0.1"
    spec = Path(workdir, "spec.json")
    spec.write_text(json.dumps({"proto": proto, "antminer": antminer, "base": base,
                                "password": PASSWORD, "stats_delay": 0.0}))  # fmt: skip
    inventory = Path(workdir, "inventory.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "miners.sim", "--spec", str(spec), "--inventory", str(inventory)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"simulator exited: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
            )
        with contextlib.suppress(ValueError, OSError):
            if json.loads(inventory.read_text()):
                return proc, str(inventory)
        time.sleep(0.1)
    raise RuntimeError("simulator did not write its inventory within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 10)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_kind = 40 if args.quick else 400
    seconds = 3.0 if args.quick else 20.0
    concurrency = 64
    if os.geteuid() != 0:
        raise SystemExit("bench.sim needs root: pyasic-rs only talks to the real ports 80/443/4028")
    with tempfile.TemporaryDirectory() as workdir:
        sim, inventory_file = start_simulator(per_kind, per_kind, workdir)
        try:
            inventory = json.loads(Path(inventory_file).read_text())
            ours = asyncio.run(measure_ours(inventory, sim.pid, seconds, concurrency))
            ours_uvloop = uvloop.run(measure_ours(inventory, sim.pid, seconds, concurrency))
            reference = {
                kind: measure_pyasic(inventory_file, kind, seconds, concurrency)
                for kind in ("protoos", "antminer")
            }
        finally:
            stop(sim)
    result: dict[str, Any] = {
        "bench": "sim",
        "mode": "quick" if args.quick else "full",
        "miners": {"protoos": per_kind, "antminer": per_kind},
        "seconds_per_phase": seconds,
        "concurrency": concurrency,
        "ours": ours,
        "ours_uvloop": ours_uvloop,
        "pyasic_rs": reference,
        "ratio": {},
    }
    for loop, measured in (("asyncio", ours), ("uvloop", ours_uvloop)):
        for kind in ("protoos", "antminer"):
            ref = reference[kind]
            for detail in ("summary", "full"):
                mine = measured[f"{kind}_{detail}"]
                key = f"{loop}_{kind}_{detail}"
                result["ratio"][f"{key}_polls_per_s_ours_over_pyasic"] = ratio(
                    mine["polls_per_s"], ref.get("polls_per_s")
                )
                result["ratio"][f"{key}_cpu_per_poll_pyasic_over_ours"] = ratio(
                    ref.get("client_cpu_us_per_poll"), mine["client_cpu_us_per_poll"]
                )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small fleet, short phases (< 1 min)")
    parser.add_argument("--pyasic-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inventory", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pyasic_worker:
        asyncio.run(pyasic_worker(args))
        sys.stdout.flush()
        os._exit(0)  # pyasic-rs may abort the interpreter during finalisation
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
