"""`python -m bench.control_stream [--quick]`: N simulated fleet nodes on ONE web process
(daphne `config.asgi:application` on a loopback port, the Redis channel layer as deployed),
side by side with a raw `websockets` echo server under the same nodes.

Processes: this one (setup, then the command issuer: `command_sign` + `command_send_and_wait`
through the Redis channel layer, as any replica or worker issues commands), the web process,
and the node fleet (`bench._nodefleet`: every node in one asyncio/uvloop process, doing what
the agent does). Phases: connect every node (starts spread over a short ramp); a heartbeat-only
window (server CPU per message); command round trips to random nodes under the heartbeat
load; a fan-out (one command to every node at once); telemetry batches from the nodes that own
miners (outcomes/s); discovery ingest (a node run on each of the first nodes through the real
path, answered with `discovery_batch` frames of found devices: devices/s, the target's figure);
a drop storm (every node's socket closed at once, the nodes reconnect with the agent's
backoff); a restart storm (the web process restarted, the nodes reconnect); then the echo
server with the same nodes and heartbeats (server CPU per message: the reference).

Everything runs on loopback in a scratch PostgreSQL database (created and dropped) and the
Redis database of ``BENCH_REDIS_URL`` (default db 9; only this run's channel-layer keys are
touched). Prints one JSON object on its last line. Everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench._django import ROOT, django_on_scratch_db, ms, pct, proc_cpu

DAPHNE = Path(sys.executable).parent / "daphne"
DAPHNE_ARGS = ("--websocket-max-message-size", "4194304", "--websocket-max-frame-size", "4194304")
TARGET = {
    "nodes": 3000,
    "command_rtt_p99_ms": 50.0,
    "ingest_devices_per_s": 20_000,
    "storm_settle_s": 10.0,
}
# bounds (`*_limit_s`): a phase that doesn't finish in time reports how far it got
FULL = {
    "nodes": 3000,
    "ramp_s": 6.0,
    "connect_limit_s": 90.0,
    "window_s": 45.0,
    "rtt_s": 30.0,
    "rtt_rate": 20.0,
    "fan_out_limit_s": 60.0,
    "telemetry_nodes": 100,
    "miners_per_node": 100,
    "rounds": 4,
    "telemetry_limit_s": 45.0,
    "discovery_nodes": 100,
    "discovery_prefix": 20,
    "discovery_limit_s": 30.0,
    "storm_limit_s": 60.0,
}
QUICK = {
    "nodes": 300,
    "ramp_s": 1.0,
    "connect_limit_s": 20.0,
    "window_s": 15.0,
    "rtt_s": 4.0,
    "rtt_rate": 20.0,
    "fan_out_limit_s": 15.0,
    "telemetry_nodes": 10,
    "miners_per_node": 100,
    "rounds": 2,
    "telemetry_limit_s": 8.0,
    "discovery_nodes": 10,
    "discovery_prefix": 22,
    "discovery_limit_s": 8.0,
    "storm_limit_s": 20.0,
}


def note(message: str) -> None:
    """Progress on stderr (the JSON line stays alone on stdout)."""
    print(f"{time.strftime('%H:%M:%S')} control_stream: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- child processes ------------------------------------------------------------------------
class Child:
    """A subprocess driven by JSON lines on stdin/stdout; stderr to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc, self.log = proc, log

    @classmethod
    async def spawn(cls, args: list[str], log: Path) -> Child:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                limit=16 * 1024 * 1024,
            )
        return cls(proc, log)

    async def ask(self, op: str, timeout: float = 300, **params: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            tail = self.log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{op}: the child exited ({self.proc.returncode}): {tail}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


def start_daphne(port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), *DAPHNE_ARGS, "config.asgi:application"]
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status)


async def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> float:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("daphne exited: " + log.read_text(errors="replace")[-1500:])
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{port}/healthz"
            status = await asyncio.to_thread(_status, url)
            if status == 200:
                return time.time()
        await asyncio.sleep(0.1)
    raise RuntimeError("daphne did not answer /healthz within 90 s")


def stop_popen(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def channel_keys_clear(url: str) -> int:
    """This run's channel-layer keys (prefix ``rw-asgi``) in the bench's Redis database."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter("rw-asgi*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
    client.close()
    return len(keys)


def pg_cpu(database: str) -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend serving the scratch database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
        pids = [row[0] for row in cursor.fetchall()]
    return {pid: proc_cpu(pid) for pid in pids}


def pg_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- measuring --------------------------------------------------------------------------------
async def window(client: Child, pid: int, seconds: float, database: str | None) -> dict[str, Any]:
    """Server CPU per message over `seconds` of heartbeats only (frames counted at the nodes)."""
    before, cpu = await client.ask("stats"), proc_cpu(pid)
    pg = await asyncio.to_thread(pg_cpu, database) if database else {}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after, cpu_after = await client.ask("stats"), proc_cpu(pid)
    pg_after = await asyncio.to_thread(pg_cpu, database) if database else {}
    wall = time.monotonic() - started
    frames = Counter(after["frames"])
    frames.subtract(before["frames"])
    heartbeats = frames["out:heartbeat"]
    total = sum(v for v in frames.values() if v > 0)
    used = cpu_after - cpu
    return {
        "seconds": round(wall, 1),
        "connected": after["connected"],
        "heartbeats": heartbeats,
        "frames_both_ways": total,
        "frames": {k: v for k, v in frames.items() if v},
        "server_cpu_s": round(used, 2),
        "server_cpu_share": round(used / wall, 3),
        "server_cpu_us_per_heartbeat": round(used / heartbeats * 1e6) if heartbeats else None,
        "server_cpu_us_per_frame": round(used / total * 1e6) if total else None,
        **(
            {"postgres_cpu_us_per_heartbeat": round(pg_delta(pg, pg_after) / heartbeats * 1e6)}
            if database and heartbeats
            else {}
        ),
    }


async def issue(node: Any, kind: str = "ping", ttl_s: int = 10) -> tuple[float, float, str]:
    """(sign s, send-to-final-ack s, status) of one command through the real path."""
    from channels.db import database_sync_to_async

    from accounts.actor import Actor
    from fleet.nodes.commands import REPLY_GRACE_S, command_send_and_wait, command_sign

    started = time.perf_counter()
    _row, signed = await database_sync_to_async(command_sign)(
        node=node, kind=kind, payload={}, actor=Actor.system("bench"), ttl_s=ttl_s
    )
    signed_at = time.perf_counter()
    outcome = await command_send_and_wait(signed, node.pk, ttl_s + REPLY_GRACE_S)
    return signed_at - started, time.perf_counter() - signed_at, outcome.status


def rtt_block(results: list[tuple[float, float, str]], wall: float) -> dict[str, Any]:
    total = [s + w for s, w, _ in results]
    return {
        "commands": len(results),
        "statuses": dict(Counter(st for _, _, st in results)),
        "wall_s": round(wall, 2),
        "rtt_ms": {
            "p50": ms(pct(total, 0.5)),
            "p90": ms(pct(total, 0.9)),
            "p99": ms(pct(total, 0.99)),
            "max": ms(max(total, default=None)),
        },
        "sign_ms": {
            "p50": ms(pct([s for s, _, _ in results], 0.5)),
            "p99": ms(pct([s for s, _, _ in results], 0.99)),
        },
        "send_to_ack_ms": {
            "p50": ms(pct([w for _, w, _ in results], 0.5)),
            "p99": ms(pct([w for _, w, _ in results], 0.99)),
        },
    }


async def bounded(tasks: list[asyncio.Task[Any]], limit: float) -> tuple[list[Any], int]:
    """The results of the tasks done within `limit` s; the rest are cancelled and counted."""
    done, pending = await asyncio.wait(tasks, timeout=limit) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [t.result() for t in done if t.exception() is None], len(pending)


async def round_trips(nodes: list[Any], rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: a `ping` to a random node every 1/rate s, each timed to its final ack."""
    tasks, start = [], time.monotonic()
    for i in range(int(rate * seconds)):
        tasks.append(asyncio.create_task(issue(random.choice(nodes))))
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    results, unfinished = await bounded(tasks, 20.0)
    return {**rtt_block(results, time.monotonic() - start), "unfinished": unfinished}


async def fan_out(nodes: list[Any], limit: float) -> dict[str, Any]:
    """One command to every node at once (signed per node, as every command is)."""
    start = time.monotonic()
    tasks = [asyncio.create_task(issue(n, ttl_s=60)) for n in nodes]
    results, unfinished = await bounded(tasks, limit)
    block = rtt_block(results, time.monotonic() - start)
    wall = block.pop("wall_s")
    block.update(
        nodes=len(nodes),
        unfinished_at_limit=unfinished,
        limit_s=limit,
        all_acked_s=wall if not unfinished else None,
    )
    return block


def discovery_runs(cfg: dict[str, Any], nodes: list[Any]) -> list[tuple[Any, Any]]:
    """A node run on each of the first `discovery_nodes` nodes, each over its own private
    block, created and started through the product's path (``run_create``, then
    ``discover_start``: the signed ``discover`` command). (run, started) pairs."""
    from accounts.actor import Actor
    from discovery import node as discovery_node
    from discovery import services

    prefix = int(cfg["discovery_prefix"])
    step = 2 ** (32 - prefix)
    actor = Actor.system("bench")
    enqueue, services.run_enqueue = services.run_enqueue, lambda run_id: None  # sent below
    try:
        out = []
        for i, node in enumerate(nodes[: int(cfg["discovery_nodes"])]):
            base = (10 << 24) + (100 << 16) + i * step
            block = f"{base >> 24}.{base >> 16 & 255}.{base >> 8 & 255}.{base & 255}/{prefix}"
            run = services.run_create(
                actor=actor, site=node.site, target_list=[block], ports=[80], node=node
            )
            out.append((run, discovery_node.discover_start(run)))
        return out
    finally:
        services.run_enqueue = enqueue


async def discovery(cfg: dict[str, Any], nodes: list[Any], client: Child) -> dict[str, Any]:
    """Discovery ingest: the nodes answer their `discover` with `discovery_batch` frames of
    found devices, one outstanding batch per command as the agent sends them; devices/s from
    the batch acks; the runs finished by the final acks, as ``run_via_node`` does."""
    from channels.db import database_sync_to_async

    from discovery import node as discovery_node
    from discovery.models import DiscoveryRun
    from fleet.nodes.commands import command_send_and_wait

    await client.ask("discovery_arm", limit=cfg["discovery_limit_s"])
    runs = await database_sync_to_async(discovery_runs)(cfg, nodes)

    async def finish(run: Any, signed: dict[str, Any], node_id: int, wait_s: float) -> str:
        outcome = await command_send_and_wait(signed, node_id, wait_s)
        await database_sync_to_async(discovery_node.discover_finish)(run, outcome)
        return str(outcome.status)

    waits = [asyncio.create_task(finish(run, *s)) for run, s in runs if isinstance(s, tuple)]
    reply = await client.ask(
        "discovery_wait", expect=len(waits), limit=cfg["discovery_limit_s"] + 30
    )
    statuses, unfinished = await bounded(waits, 30.0)
    stored = await database_sync_to_async(
        lambda: sum(r.found for r in DiscoveryRun.unscoped.filter(pk__in=[r.pk for r, _ in runs]))
    )()
    reply.update(
        runs=len(runs),
        started=len(waits),
        final_acks=dict(Counter(statuses)),
        unfinished=unfinished,
        devices_stored=stored,
        scope_per_node=f"/{cfg['discovery_prefix']}, port 80",
    )
    return reply


def settle(reply: dict[str, Any], since: float, ready: float | None = None) -> dict[str, Any]:
    all_at = reply.pop("all_at")
    reply.pop("since", None)
    out = {**reply, "settle_s": round(all_at - since, 2) if all_at else None}
    if ready is not None:
        out["web_ready_after_s"] = round(ready - since, 2)
        out["settle_after_ready_s"] = round(all_at - ready, 2) if all_at else None
    return out


# --- the run --------------------------------------------------------------------------------
async def ours(cfg: dict[str, Any], work: Path, database: str, nodes: list[Any]) -> dict[str, Any]:
    port = free_port()
    log = work / "daphne.log"
    web = start_daphne(port, log)
    client: Child | None = None
    out: dict[str, Any] = {}
    try:
        await wait_ready(web, port, log)
        note("web process ready; connecting the nodes")
        url = f"ws://127.0.0.1:{port}/ws/nodes/control/"
        client = await Child.spawn(
            [
                sys.executable,
                "-m",
                "bench._nodefleet",
                "--url",
                url,
                "--nodes",
                str(work / "nodes.json"),
            ],
            work / "nodefleet.log",
        )
        since = time.time()
        out["connect"] = settle(
            await client.ask("start", ramp_s=cfg["ramp_s"], limit=cfg["connect_limit_s"]), since
        )
        out["connect"]["ramp_s"] = cfg["ramp_s"]
        note(f"connect: {out['connect']}")
        await asyncio.sleep(3)  # the connect's own commands (node_key, assign_miners) settle
        out["heartbeats_only"] = await window(client, web.pid, cfg["window_s"], database)
        note("heartbeat window done; command round trips")
        out["command_rtt"] = await round_trips(nodes, cfg["rtt_rate"], cfg["rtt_s"])
        note("fan-out")
        out["fan_out"] = await fan_out(nodes, cfg["fan_out_limit_s"])
        note("telemetry")
        out["telemetry"] = await client.ask(
            "telemetry", rounds=cfg["rounds"], limit=cfg["telemetry_limit_s"]
        )
        note("discovery")
        out["discovery"] = await discovery(cfg, nodes, client)
        note(f"discovery: {out['discovery']}")
        await asyncio.sleep(2)
        since = time.time()
        note("drop storm")
        out["drop_storm"] = settle(await client.ask("drop", limit=cfg["storm_limit_s"]), since)
        await asyncio.sleep(3)
        await client.ask("reset_counters")
        since = time.time()
        note("restart storm")
        stop_popen(web)  # SIGTERM: a restart, as a deploy does it
        web = start_daphne(port, log)
        ready = await wait_ready(web, port, log)
        out["restart_storm"] = settle(
            await client.ask("storm_wait", since=since, limit=cfg["storm_limit_s"]), since, ready
        )
        stats = await client.ask("stats")
        out["bad_signatures"] = stats["bad_signatures"]
        await client.ask("stop", timeout=60)
    finally:
        if client is not None:
            await client.stop()
        stop_popen(web)
    tail = log.read_text(errors="replace").splitlines()
    out["web_log"] = {
        "lines": len(tail),
        "tracebacks": sum("Traceback" in ln for ln in tail),
        "last": tail[-1][-200:] if tail else "",
    }
    return out


async def reference(cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    server = await Child.spawn([sys.executable, "-m", "bench._echo"], work / "echo.log")
    client: Child | None = None
    try:
        assert server.proc.stdout is not None
        port = int(await asyncio.wait_for(server.proc.stdout.readline(), 30))
        client = await Child.spawn(
            [
                sys.executable,
                "-m",
                "bench._nodefleet",
                "--echo",
                "--url",
                f"ws://127.0.0.1:{port}/",
                "--nodes",
                str(work / "nodes.json"),
            ],
            work / "echofleet.log",
        )
        since = time.time()
        note("reference: echo server")
        reply = await client.ask("start", ramp_s=cfg["ramp_s"], limit=cfg["connect_limit_s"])
        out = {"connect": settle(reply, since)}
        await asyncio.sleep(3)
        out["heartbeats_only"] = await window(client, server.proc.pid, cfg["window_s"], None)
        out["echo_rtt"] = await client.ask("echo_rtt", rate=cfg["rtt_rate"], seconds=cfg["rtt_s"])
        await client.ask("stop", timeout=60)
        return out
    finally:
        if client is not None:
            await client.stop()
        await server.stop()


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = dict(QUICK if args.quick else FULL)
    if args.nodes:
        cfg["nodes"] = args.nodes
    if args.ramp is not None:
        cfg["ramp_s"] = args.ramp
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="rw-bench-control-") as tmp,
        django_on_scratch_db("control", extra_env={"REDIS_URL": redis_url}) as database,
    ):
        from bench._nodes import build_nodes
        from fleet.models import FleetNode

        work = Path(tmp)
        channel_keys_clear(redis_url)
        clock = time.monotonic()
        note("building the nodes")
        spec = build_nodes(
            int(cfg["nodes"]), int(cfg["telemetry_nodes"]), int(cfg["miners_per_node"])
        )
        (work / "nodes.json").write_text(json.dumps(spec))
        setup = {**spec["timings"], "total_s": round(time.monotonic() - clock, 1)}
        nodes = list(FleetNode.unscoped.filter(org_id=spec["org_id"]).order_by("id"))
        try:
            ours_result = asyncio.run(ours(cfg, work, database, nodes))
            ref_result = asyncio.run(reference(cfg, work)) if not args.no_reference else {}
        finally:
            channel_keys_clear(redis_url)
            if args.logs:
                shutil.copytree(work, args.logs, dirs_exist_ok=True)
    mine = ours_result["heartbeats_only"]
    theirs = ref_result.get("heartbeats_only", {})
    connected = ours_result["connect"]["connected"]
    rtt_p99 = ours_result["command_rtt"]["rtt_ms"]["p99"]
    ingest = ours_result["discovery"]["devices_per_s"]
    storm = ours_result["restart_storm"]["settle_after_ready_s"]
    met = {
        "all_connected": connected == cfg["nodes"] >= TARGET["nodes"],
        "command_rtt_p99": bool(rtt_p99 and rtt_p99 < TARGET["command_rtt_p99_ms"]),
        "ingest": bool(ingest and ingest >= TARGET["ingest_devices_per_s"]),
        "drop_storm": bool(
            (ours_result["drop_storm"]["settle_s"] or 1e9) < TARGET["storm_settle_s"]
        ),
        "restart_storm": bool(storm is not None and storm < TARGET["storm_settle_s"]),
    }
    return {
        "bench": "control_stream",
        "mode": "quick" if args.quick else "full",
        "config": {**cfg, "web": "one daphne process, Redis channel layer", "database": database},
        "setup": setup,
        "ours": ours_result,
        "reference_websockets_echo": ref_result,
        "ratio": {
            "server_cpu_per_heartbeat_ours_over_echo": ratio(
                mine.get("server_cpu_us_per_heartbeat"), theirs.get("server_cpu_us_per_heartbeat")
            ),
            "server_cpu_per_frame_ours_over_echo": ratio(
                mine.get("server_cpu_us_per_frame"), theirs.get("server_cpu_us_per_frame")
            ),
        },
        "ingest_note": "discovery_batch devices (ours.discovery); ours.telemetry is the "
        "telemetry_batch ingest of node-polled miners",
        "box_load": {
            "before": [round(v, 2) for v in load_before],
            "after": [round(v, 2) for v in os.getloadavg()],
        },
        "target": TARGET,
        "target_met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.control_stream", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 nodes, short phases (< 1 min)")
    parser.add_argument("--nodes", type=int, help="fleet nodes (default 3,000; quick 300)")
    parser.add_argument("--ramp", type=float, help="spread the nodes' first connect over this")
    parser.add_argument("--no-reference", action="store_true", help="skip the echo server")
    parser.add_argument("--logs", help="copy the processes' logs to this directory")
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
