"""`python -m bench.telemetry [--quick]`: the real poller path (`due_shards` → `poll_shard` →
`telemetry_ingest` → PostgreSQL) against a simulated fleet at the target interval, side by
side with pyasic-rs `get_data` over the same miners at the same concurrency.

Deployment modelled, as docker/entrypoint.sh and compose run it: one Celery beat ticking
`fleet.poll_due` every 2 s (this process does what the task does on that schedule:
`due_shards`, `mark_sent`, each shard to its queue `poll.<k>`) and one single-process poll
worker per queue (`FLEET_POLL_QUEUES` = `--workers`, default 4): processes forked after Django
is loaded, each running one `poll_shard` at a time on its own miner loop (`fleet.runtime`),
taking shards from its own queue only. The cache (the queues' backlog marks) is Redis
(`BENCH_REDIS_URL`, a key prefix of its own) as in production; live updates stay in memory. The
simulator runs in its own processes on a random 127.x block (real ports: pyasic-rs knows no
others, so this needs root). The database is a scratch PostgreSQL database created and
dropped by the run.

Phases: a cold run (every miner due at once on fresh processes), a paced run of whole
intervals (the first is warm-up), a warm capacity run (every miner due at once again), then
pyasic-rs in a subprocess (it has aborted interpreters at exit). Prints one JSON object on its
last line. Everything it starts is stopped, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import queue
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench._django import (
    ROOT,
    backend_pid,
    box_cpu,
    django_on_scratch_db,
    make_world,
    ms,
    pct,
    proc_cpu,
    stop_process,
    tree_cpu,
)
from bench._django import start_simulator as _start_simulator

PASSWORD = "bench-telemetry-pw"
PROTO_SHARE = 0.6  # 6,000 ProtoOS + 4,000 Antminer at 10,000, as in docs/simulator.md
ON_TIME_GRACE = 0.10  # a poll is on time when it starts <= 1.1 x interval after the previous one
IDENTIFY_BUDGET_S = 60.0  # pyasic-rs: identification of the whole fleet, then its warm-up
WARM_BUDGET_S = 45.0
WORKERS = 4  # FLEET_POLL_QUEUES' default: docker compose runs poll-0 .. poll-3
TARGET = {"miners": 10_000, "on_time_share": 0.999, "p99_poll_to_stored_s": 2.0}


# --- simulator ------------------------------------------------------------------------------
def sim_processes(total: int, workers: int) -> int:
    """Shards the simulator needs: per ProtoOS rig two listeners plus two kept-alive
    connections from every worker process (an upper bound since each rig has one poll
    process; kept so runs compare with earlier ones); the hard RLIMIT_NOFILE is 20,000."""
    per_miner = 2 + 2 * workers
    return max(1, math.ceil(total * per_miner / 17_000))


def start_simulator(
    proto: int, antminer: int, processes: int, workdir: str
) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]]]:
    base = f"127.{random.randint(160, 250)}.0.1"
    spec = {"proto": proto, "antminer": antminer, "base": base, "password": PASSWORD,
            "stats_delay": 0.0}  # fmt: skip
    return _start_simulator(spec, processes, workdir)


def stop(proc: subprocess.Popen[bytes] | multiprocessing.process.BaseProcess) -> None:
    if isinstance(proc, subprocess.Popen):
        stop_process(proc, 15)
        return
    if proc.is_alive():
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


# --- fleet in the database --------------------------------------------------------------------
async def _identify_templates(inventory: list[dict[str, Any]]) -> dict[str, tuple[Any, list[str]]]:
    """One real identification per kind (the drivers, as `miner_add` does) and its capabilities;
    every other miner's device_info is that template with its own host/serial/MAC/model."""
    from miners import Credentials, HttpClient, Registry, default_drivers

    http = HttpClient()
    try:
        registry = Registry(default_drivers(include_pyasic=False, http=http))
        templates: dict[str, tuple[Any, list[str]]] = {}
        for kind in ("protoos", "antminer"):
            entry = next((e for e in inventory if e["kind"] == kind), None)
            if entry is None:
                continue
            info = await registry.identify_any(entry["host"], None, timeout=10, credentials=None)
            if info is None or info.driver != kind:
                raise RuntimeError(f"{entry['host']} did not identify as {kind}: {info}")
            device = registry.get(info.driver).connect(info, Credentials(password=""), timeout=1)
            caps = sorted(str(c) for c in device.capabilities)
            await device.close()
            templates[kind] = (info, caps)
        return templates
    finally:
        await http.close()


def create_fleet(inventory: list[dict[str, Any]]) -> list[int]:
    """Miner rows in bulk (as `miner_add` would store them), credentials through
    `credentials_store`. Returns the ids."""
    import dataclasses

    from django.db import transaction
    from django.utils import timezone

    from fleet.models import Miner
    from fleet.services.credentials import credentials_store
    from fleet.services.identity import identifier_for, normalise_mac

    templates = asyncio.run(_identify_templates(inventory))
    world = make_world(sites=max(1, min(10, len(inventory) // 1000)))
    now = timezone.now()
    rows = []
    for i, entry in enumerate(inventory):
        template, caps = templates[entry["kind"]]
        port = entry["ports"]["https"] if entry["kind"] == "protoos" else entry["ports"]["rpc"]
        info = dataclasses.replace(
            template,
            host=entry["host"],
            port=port,
            serial=entry["serial"] if entry["kind"] == "protoos" else None,
            mac=entry["mac"] if entry["kind"] == "protoos" else None,
            model=entry["model"],
            hostname=f"proto-{i:06d}" if entry["kind"] == "protoos" else None,
        )
        rows.append(
            Miner(
                org=world.org,
                site=world.sites[i % len(world.sites)],
                identifier=identifier_for(info),
                name=f"{entry['kind']}-{i:05d}",
                make=info.make,
                model=info.model,
                firmware=info.firmware or "",
                serial=info.serial or "",
                mac=normalise_mac(info.mac),
                hostname=info.hostname or "",
                host=info.host,
                port=info.port,
                scheme=info.scheme or "",
                driver=info.driver,
                device_info=info.to_dict(),
                capabilities=caps,
                next_poll_at=now,
            )
        )
    with transaction.atomic():
        created = Miner.unscoped.bulk_create(rows, batch_size=2000)
        for miner in created:
            credentials_store(miner, username="", password=PASSWORD)
    return [m.pk for m in created]


def shared_cache() -> None:
    """The cache on Redis, as deployed (the beat reads the queues' backlog marks the workers
    write), under a key prefix of this run's own. Live updates stay in memory."""
    from django.core.cache import cache
    from django.test.utils import override_settings

    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    backend = "django.core.cache.backends.redis.RedisCache"
    prefix = f"rw-bench-telemetry-{os.getpid()}"
    override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": url,
                                          "KEY_PREFIX": prefix}}).enable()  # fmt: skip
    cache.set("ping", 1, 5)  # fails here, not mid-run, without Redis


# --- the Celery worker stand-in --------------------------------------------------------------
def worker_main(index: int, tasks: Any, results: Any) -> None:
    """A prefork child: one `poll_shard` at a time, observed from outside (fleet/ untouched):
    `_targets` and `telemetry_ingest` are wrapped to time them and to see every outcome with
    its commit time, `HttpClient.request` to count requests, logins and 401s."""
    from django.db import close_old_connections

    from fleet.services import polling
    from miners.http import HttpClient

    events: list[tuple[Any, ...]] = []
    requests: Counter[str] = Counter()
    current: dict[str, float] = {}
    real_ingest, real_targets, real_request = (
        polling.telemetry_ingest,
        polling._targets,
        HttpClient.request,
    )

    def observed_targets(miner_ids: list[int]) -> Any:
        cpu, wall = time.process_time(), time.time()
        out = real_targets(miner_ids)
        current["targets_cpu"] = time.process_time() - cpu
        current["targets_s"] = time.time() - wall
        current["polled_from"] = time.time()
        current["poll_cpu_from"] = time.process_time()
        return out

    def observed_ingest(outcomes: Any, **kwargs: Any) -> Any:
        called, cpu = time.time(), time.process_time()
        current["poll_s"] = called - current.get("polled_from", called)
        current["poll_cpu"] = cpu - current.get("poll_cpu_from", cpu)
        summary = real_ingest(outcomes, **kwargs)
        committed = time.time()  # telemetry_ingest is atomic: returned = committed
        current["ingest_s"] = committed - called
        current["ingest_cpu"] = time.process_time() - cpu
        current["transitions"] = summary.transitions
        for o in outcomes:
            kind = o.error.kind if o.error is not None else ""
            events.append((o.miner_id, o.started, o.seconds, committed, called, kind))
        return summary

    async def counted_request(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        kind = "protoos" if "/api/v1/" in url else "antminer_web"
        requests[kind] += 1
        if "/auth/" in url:
            requests[f"protoos_{url.rsplit('/', 1)[-1]}"] += 1
        reply = await real_request(self, method, url, **kwargs)
        if reply.status == 401:
            requests[f"{kind}_401"] += 1
        return reply

    polling.telemetry_ingest = observed_ingest  # type: ignore[assignment]
    polling._targets = observed_targets  # type: ignore[assignment]
    HttpClient.request = counted_request  # type: ignore[method-assign]

    while True:
        task = tasks.get()
        if task is None:
            break
        shard_id, phase, dispatched, miner_ids, queue_k, scheduled = task
        close_old_connections()  # as Celery's Django fixup does around every task
        current.clear()
        events.clear()
        before = Counter(requests)
        started, cpu = time.time(), time.process_time()
        pid = backend_pid()
        db_cpu = proc_cpu(pid) if pid else 0.0
        error = ""
        try:
            summary = polling.poll_shard(miner_ids, queue=queue_k, scheduled=scheduled)
            polled, ok = summary.polled, summary.ok
        except Exception as exc:  # a shard that blew up is reported, the worker goes on
            error, polled, ok = f"{type(exc).__name__}: {exc}"[:300], 0, 0
        db_cpu = (proc_cpu(pid) - db_cpu) if pid else 0.0
        results.put(
            {
                "worker": index,
                "shard": shard_id,
                "phase": phase,
                "size": len(miner_ids),
                "dispatched": dispatched,
                "started": started,
                "finished": time.time(),
                "cpu": time.process_time() - cpu,
                "db_cpu": db_cpu,
                "polled": polled,
                "ok": ok,
                "error": error,
                "requests": dict(requests - before),
                "events": list(events),
                **current,
            }
        )
        close_old_connections()
    results.put({"exit": index})


# --- the beat and the phases ----------------------------------------------------------------
class Deployment:
    """Worker processes and their queues: one queue per worker, every shard to the queue
    `due_shards` chose for it (`poll.<miner id % workers>`), as the routed deployment does."""

    def __init__(self, workers: int) -> None:
        from django.db import connections

        ctx = multiprocessing.get_context("fork")  # Celery prefork: children of a loaded Django
        self.workers = workers
        self.queues = [ctx.Queue() for _ in range(workers)]
        self.results = ctx.Queue()
        connections.close_all()  # never share a connection with a child
        self.procs = [
            ctx.Process(target=worker_main, args=(i, self.queues[i], self.results), daemon=True)
            for i in range(workers)
        ]
        for proc in self.procs:
            proc.start()
        self.done: list[dict[str, Any]] = []
        self.exited: set[int] = set()
        self.dispatched = 0
        self.abandoned = 0

    def dispatch(self, shards: list[Any], phase: str) -> None:
        """What `fleet.poll_due` does after claiming: mark the queues, publish each shard."""
        from fleet.services.polling import mark_sent

        mark_sent(shards)
        now = time.time()
        for shard in shards:
            self.queues[shard.queue].put(
                (self.dispatched, phase, now, shard.miner_ids, shard.queue, shard.scheduled)
            )
            self.dispatched += 1

    def collect(self, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    payload = self.results.get(timeout=remaining)
                else:
                    payload = self.results.get_nowait()
            except queue.Empty:
                return
            if "exit" in payload:
                self.exited.add(payload["exit"])
            else:
                self.done.append(payload)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.done) + self.abandoned < self.dispatched and time.monotonic() < deadline:
            self.collect(0.2)
        return len(self.done) + self.abandoned >= self.dispatched

    def discard_queued(self) -> None:
        """Drop shards no worker has taken yet (a bounded phase is over)."""
        for q in self.queues:
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
                    self.abandoned += 1

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.procs if p.pid)

    def shutdown(self) -> None:
        self.discard_queued()
        for q in self.queues:
            q.put(None)
        deadline = time.monotonic() + 60
        while len(self.exited) < len(self.procs) and time.monotonic() < deadline:
            self.collect(0.2)
        for proc in self.procs:
            proc.join(5)
            stop(proc)
        for q in [*self.queues, self.results]:
            q.cancel_join_thread()
            q.close()

    def phase(self, name: str) -> list[dict[str, Any]]:
        return [d for d in self.done if d["phase"] == name]


def snapshot(deploy: Deployment, sim_pid: int) -> dict[str, float]:
    busy, total = box_cpu()
    return {
        "t": time.time(),
        "workers": deploy.cpu(),
        "sim": tree_cpu(sim_pid),
        "beat": proc_cpu(os.getpid()),
        "box_busy": busy,
        "box_total": total,
    }


def all_due_phase(deploy: Deployment, sim_pid: int, name: str, limit_s: float) -> dict[str, Any]:
    """Every miner due at once, shards back to back: how fast the deployment gets through the
    whole fleet (cold: first contact, logins and TLS handshakes; warm: steady-state polls)."""
    from django.utils import timezone

    from fleet.models import Miner
    from fleet.services.polling import due_shards

    Miner.unscoped.update(next_poll_at=timezone.now() - dt.timedelta(seconds=1))
    before = snapshot(deploy, sim_pid)
    shards = due_shards()
    deploy.dispatch(shards, name)
    drained = deploy.drain(limit_s)
    after = snapshot(deploy, sim_pid)
    if not drained:
        deploy.discard_queued()
        deploy.drain(30)
    return {"t0": before["t"], "drained": drained, "snaps": {"from": before, "to": after}}


def restagger(miner_ids: list[int], interval: float, seed: int) -> dict[int, float]:
    """Due times spread evenly over the next interval (a fleet in steady state)."""
    from django.utils import timezone

    from fleet.models import Miner

    rng = random.Random(seed)
    offsets = [i / len(miner_ids) * interval for i in range(len(miner_ids))]
    rng.shuffle(offsets)  # mix kinds and sites within every shard
    now = timezone.now()
    rows = [
        Miner(pk=pk, next_poll_at=now + dt.timedelta(seconds=off))
        for pk, off in zip(miner_ids, offsets, strict=True)
    ]
    Miner.unscoped.bulk_update(rows, ["next_poll_at"], batch_size=2000)
    return {m.pk: m.next_poll_at.timestamp() for m in rows}


def paced_phase(
    deploy: Deployment,
    sim_pid: int,
    interval: float,
    intervals: int,
    beat: float,
) -> dict[str, Any]:
    """The beat: `due_shards` every `beat` seconds, shards to the workers, for `intervals`."""
    from fleet.services.polling import due_shards

    t0 = time.time()
    measure_from, end = t0 + interval, t0 + interval * intervals
    snaps: dict[str, dict[str, float]] = {}
    ticks, tick_ms = 0, []
    next_tick = time.monotonic()
    while time.time() < end:
        if "from" not in snaps and time.time() >= measure_from:
            snaps["from"] = snapshot(deploy, sim_pid)
        started = time.perf_counter()
        shards = due_shards()
        tick_ms.append((time.perf_counter() - started) * 1000)
        deploy.dispatch(shards, "paced")
        ticks += 1
        next_tick += beat
        deploy.collect(max(0.0, next_tick - time.monotonic()))
    snaps["to"] = snapshot(deploy, sim_pid)
    drained = deploy.drain(30)
    if not drained:
        deploy.discard_queued()
        deploy.drain(30)
    return {
        "t0": t0,
        "measure_from": measure_from,
        "end": end,
        "snaps": snaps,
        "ticks": ticks,
        "due_shards_ms": {"p50": round(pct(tick_ms, 0.5) or 0, 1), "max": round(max(tick_ms), 1)},
        "drained": drained,
    }


# --- analysis -------------------------------------------------------------------------------
def cpu_block(
    snaps: dict[str, dict[str, float]], done: list[dict[str, Any]], polls: int
) -> dict[str, Any]:
    a, b = snaps["from"], snaps["to"]
    wall = max(1e-6, b["t"] - a["t"])
    per = max(1, polls)

    def us(seconds: float) -> int:
        return round(seconds / per * 1e6)

    workers = b["workers"] - a["workers"]
    db = sum(d["db_cpu"] for d in done)
    sim = b["sim"] - a["sim"]
    return {
        "workers_us_per_poll": us(workers),
        "of_which_targets_us": us(sum(d.get("targets_cpu", 0.0) for d in done)),
        "of_which_poll_us": us(sum(d.get("poll_cpu", 0.0) for d in done)),
        "of_which_ingest_us": us(sum(d.get("ingest_cpu", 0.0) for d in done)),
        "db_backend_us_per_poll": us(db),
        "simulator_us_per_poll": us(sim),
        "beat_us_per_poll": us(b["beat"] - a["beat"]),
        "cores": {
            "workers": round(workers / wall, 2),
            "db_backends": round(db / wall, 2),
            "simulator": round(sim / wall, 2),
            "box_busy": round((b["box_busy"] - a["box_busy"]) / wall, 2),
            "box_total": round((b["box_total"] - a["box_total"]) / wall, 2),
        },
    }


def requests_block(done: list[dict[str, Any]], polls: int) -> dict[str, float]:
    """HTTP requests per poll (Antminer RPC connections are not counted): ProtoOS REST and
    Antminer web (digest: a 401 challenge first), ProtoOS logins, refreshes and 401s apart."""
    total: Counter[str] = Counter()
    for d in done:
        total.update(d.get("requests", {}))
    if not polls:
        return {f"{k}_total": v for k, v in sorted(total.items())}
    return {k: round(v / polls, 3) for k, v in sorted(total.items())}


def shard_block(done: list[dict[str, Any]]) -> dict[str, Any]:
    def p(key: str, q: float) -> float | None:
        return ms(pct([d.get(key, 0.0) for d in done], q))

    return {
        "shards": len(done),
        "shard_errors": Counter(d["error"].split(":")[0] for d in done if d["error"]),
        "shard_ms_p50": ms(pct([d["finished"] - d["started"] for d in done], 0.5)),
        "queue_wait_ms": {
            "p50": ms(pct([d["started"] - d["dispatched"] for d in done], 0.5)),
            "max": ms(max((d["started"] - d["dispatched"] for d in done), default=None)),
        },
        "targets_ms_p50": p("targets_s", 0.5),
        "poll_ms_p50": p("poll_s", 0.5),
        "ingest_ms_p50": p("ingest_s", 0.5),
        "ingest_ms_max": ms(max((d.get("ingest_s", 0.0) for d in done), default=None)),
        "ingest_rows_per_s": ingest_rate(done),
    }


def ingest_rate(done: list[dict[str, Any]]) -> int | None:
    """Rows written (latest upserts + samples) per second spent inside telemetry_ingest."""
    rows = sum(d["polled"] + d["ok"] for d in done)
    seconds = sum(d.get("ingest_s", 0.0) for d in done)
    return round(rows / seconds) if seconds else None


def analyse_all_due(
    name: str, run: dict[str, Any], done: list[dict[str, Any]], total: int
) -> dict[str, Any]:
    events = [e for d in done for e in d["events"]]
    latency = [e[3] - e[1] for e in events]
    wall = (max(d["finished"] for d in done) - run["t0"]) if done else 0.0
    polled = sum(d["polled"] for d in done)
    return {
        "miners": total,
        "drained": run["drained"],
        "polled": polled,
        "ok": sum(d["ok"] for d in done),
        "lost_in_failed_shards": sum(d["size"] for d in done if d["error"]),
        "errors": dict(Counter(e[5] for e in events if e[5])),
        "wall_s": round(wall, 2),
        "polls_per_s": round(polled / wall, 1) if wall else None,
        "poll_to_stored_ms": {"p50": ms(pct(latency, 0.5)), "p99": ms(pct(latency, 0.99))},
        **shard_block(done),
        "http_requests_per_poll": requests_block(done, polled),
        "cpu": cpu_block(run["snaps"], done, polled),
    }


def analyse_paced(
    run: dict[str, Any], done: list[dict[str, Any]], first_due: dict[int, float], interval: float
) -> dict[str, Any]:
    t0, start, end = run["t0"], run["measure_from"], run["end"]
    by_miner: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for d in done:
        for e in d["events"]:
            by_miner[e[0]].append(e)
    gaps, lateness, late, late_strict, duplicates, measured, missed = [], [], 0, 0, 0, 0, 0
    latency, due_latency, warm_latency, errors = [], [], [], Counter()
    limit = interval * (1 + ON_TIME_GRACE)
    for miner_id, polls in by_miner.items():
        polls.sort(key=lambda e: e[1])
        due = first_due.get(miner_id, t0)
        previous = None
        for _, started, _seconds, committed, called, kind in polls:
            if start <= started < end:
                measured += 1
                latency.append(committed - started)
                due_latency.append(committed - due)
                lateness.append(started - due)
                if kind:
                    errors[kind] += 1
                gap = started - (previous if previous is not None else t0)
                gaps.append(gap)
                late += gap > limit
                late_strict += gap > interval
                duplicates += gap < interval / 2
            elif started < start:
                warm_latency.append(committed - started)
            previous, due = started, called + interval
        if previous is not None and end - previous > limit:
            missed += 1  # the poll that should have come before the end never started
    never = len(first_due) - len(by_miner)
    missed += never
    span = end - start
    denominator = max(1, measured + missed)
    measured_done = [d for d in done if start <= d["dispatched"] < end]
    return {
        "measured_s": round(span, 1),
        "polls": measured,
        "failed": sum(errors.values()),
        "errors": dict(errors),
        "missed": missed,
        "never_polled": never,
        "duplicate_polls": duplicates,
        "on_time_rule": f"started <= {1 + ON_TIME_GRACE:g} x interval after the previous poll",
        "on_time_share": round(1 - (late + missed) / denominator, 5),
        "on_time_share_strict": round(1 - (late_strict + missed) / denominator, 5),
        "period_s": {
            "p50": round(pct(gaps, 0.5) or 0, 3),
            "p99": round(pct(gaps, 0.99) or 0, 3),
            "max": round(max(gaps, default=0), 3),
        },
        "start_after_due_ms": {"p50": ms(pct(lateness, 0.5)), "p99": ms(pct(lateness, 0.99))},
        "poll_to_stored_ms": {
            "p50": ms(pct(latency, 0.5)),
            "p99": ms(pct(latency, 0.99)),
            "max": ms(max(latency, default=None)),
        },
        "due_to_stored_ms": {"p50": ms(pct(due_latency, 0.5)), "p99": ms(pct(due_latency, 0.99))},
        "warmup_poll_to_stored_ms": {
            "p50": ms(pct(warm_latency, 0.5)),
            "p99": ms(pct(warm_latency, 0.99)),
        },
        "polls_per_s": round(measured / span, 1),
        "stored_rows_per_s": round(sum(d["polled"] + d["ok"] for d in measured_done) / span),
        **shard_block(measured_done),
        "http_requests_per_poll": requests_block(measured_done, measured),
        "cpu": cpu_block(run["snaps"], measured_done, measured),
        "ticks": run["ticks"],
        "due_shards_ms": run["due_shards_ms"],
        "drained": run["drained"],
    }


# --- pyasic-rs reference ----------------------------------------------------------------------
async def within(awaitable: Any, seconds: float) -> Any:
    """`awaitable`'s result, or TimeoutError after `seconds` without waiting for it to notice
    the cancellation (pyasic-rs futures don't always honour it; `wait_for` would hang)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


async def pyasic_worker(args: argparse.Namespace) -> None:
    """Subprocess side: pyasic-rs handles for every miner (both kinds), then `get_data` round
    robin for a fixed time (as bench.sim measures it). Each stage has a time budget."""
    from pyasic_rs import MinerFactory

    from bench.sim import hammer
    from miners import MinerError

    inventory = json.loads(Path(args.inventory).read_text())
    factory = MinerFactory().with_firmware_discovery_auth("AntMiner Stock", "root", PASSWORD)
    gate = asyncio.Semaphore(64)  # all at once, its identification times out on a busy box

    async def identify(host: str) -> Any:
        async with gate:
            for _attempt in range(3):
                with contextlib.suppress(Exception):
                    miner = await within(factory.get_miner(host), 20)
                    if miner is not None:
                        return miner
        return None

    started = time.monotonic()
    tasks = [asyncio.ensure_future(identify(e["host"])) for e in inventory]
    done, pending = await asyncio.wait(tasks, timeout=IDENTIFY_BUDGET_S)
    for task in pending:
        task.cancel()
    handles = [t.result() for t in done if t.result() is not None]
    identify_s = time.monotonic() - started
    for miner in handles:
        miner.set_auth("root", PASSWORD)
    warm = asyncio.Semaphore(args.concurrency)

    async def warm_up(miner: Any) -> None:
        async with warm:
            with contextlib.suppress(Exception):
                await within(miner.get_data(), 20)

    started = time.monotonic()
    warming = [asyncio.ensure_future(warm_up(m)) for m in handles]
    _done, pending = await asyncio.wait(warming, timeout=WARM_BUDGET_S)  # logins
    for task in pending:
        task.cancel()
    warm_s = time.monotonic() - started

    async def poll(miner: Any) -> None:
        try:
            data = await within(miner.get_data(), 10)
        except Exception as exc:  # timeouts and whatever pyasic-rs raises count as errors
            raise MinerError(f"{type(exc).__name__}: {exc}") from exc
        if data.hashrate is None:
            raise MinerError("empty snapshot")

    run = await hammer(handles, poll, args.seconds, args.concurrency)
    run.update(
        identified=len(handles),
        of=len(inventory),
        identify_s=round(identify_s, 1),
        warm_up_s=round(warm_s, 1),
    )
    print(json.dumps(run), flush=True)


def measure_pyasic(inventory_file: str, seconds: float, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.telemetry", "--pyasic-worker", "--inventory",
           inventory_file, "--seconds", str(seconds), "--concurrency", str(concurrency)]  # fmt: skip
    try:
        out = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds + IDENTIFY_BUDGET_S + WARM_BUDGET_S + 60,
        )
    except subprocess.TimeoutExpired:
        return {"error": "pyasic-rs worker timed out"}
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"error": f"pyasic-rs worker printed nothing (exit {out.returncode})"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- the run --------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    total = args.miners or (500 if args.quick else 10_000)
    intervals = args.intervals or (3 if args.quick else 7)
    workers = args.workers
    proto = round(total * PROTO_SHARE)
    antminer = total - proto
    ref_seconds = 3.0 if args.quick else 20.0
    if os.geteuid() != 0:
        raise SystemExit("bench.telemetry needs root: pyasic-rs only talks to the real ports")
    timings: dict[str, float] = {}
    clock = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        processes = sim_processes(total, workers)
        sim, inventory = start_simulator(proto, antminer, processes, workdir)
        inventory_file = str(Path(workdir, "inventory.json"))
        timings["simulator_start_s"] = round(time.monotonic() - clock, 1)
        deploy: Deployment | None = None
        try:
            clock = time.monotonic()
            queues = {"FLEET_POLL_QUEUES": str(workers)}
            with django_on_scratch_db("telemetry", extra_env=queues) as database:
                from django.conf import settings

                shared_cache()

                interval = float(settings.FLEET_POLL_INTERVAL)
                beat = float(settings.CELERY_BEAT_SCHEDULE["poll-due-miners"]["schedule"])
                config = {
                    "interval_s": interval,
                    "beat_s": beat,
                    "shard_size": settings.FLEET_POLL_SHARD_SIZE,
                    "concurrency_per_worker": settings.FLEET_POLL_CONCURRENCY,
                    "deadline_s": settings.FLEET_POLL_DEADLINE,
                    "database": database,
                }
                timings["create_db_and_migrate_s"] = round(time.monotonic() - clock, 1)
                clock = time.monotonic()
                ids = list(create_fleet(inventory))
                timings["create_fleet_s"] = round(time.monotonic() - clock, 1)
                deploy = Deployment(workers)
                limit = 60.0 if args.quick else 75.0
                cold = all_due_phase(deploy, sim.pid, "cold", limit)
                first_due = restagger(ids, interval, seed=7)
                paced = paced_phase(deploy, sim.pid, interval, intervals, beat)
                warm = all_due_phase(deploy, sim.pid, "warm", limit)
                deploy.shutdown()
                results = {
                    "cold": analyse_all_due("cold", cold, deploy.phase("cold"), total),
                    "paced": analyse_paced(paced, deploy.phase("paced"), first_due, interval),
                    "warm": analyse_all_due("warm", warm, deploy.phase("warm"), total),
                }
                deploy = None
            # what was in flight at once in the warm run: one shard per busy worker
            shards = results["warm"]["shards"]
            ref_concurrency = min(total, min(workers, shards) * config["concurrency_per_worker"])
            config["reference_concurrency"] = ref_concurrency
            reference = (
                measure_pyasic(inventory_file, ref_seconds, ref_concurrency)
                if not args.no_reference
                else {"skipped": True}
            )
        finally:
            if deploy is not None:
                deploy.shutdown()
            stop(sim)
            sim_log = Path(workdir, "simulator.log").read_text(errors="replace").splitlines()
    paced_result, warm_result = results["paced"], results["warm"]
    met = (
        total >= TARGET["miners"]
        and paced_result["on_time_share"] >= TARGET["on_time_share"]
        and (paced_result["poll_to_stored_ms"]["p99"] or 1e9)
        < TARGET["p99_poll_to_stored_s"] * 1000
    )
    return {
        "bench": "telemetry",
        "mode": "quick" if args.quick else "full",
        "miners": {"protoos": proto, "antminer": antminer},
        "deployment": {
            "workers": workers,
            "simulator_processes": processes,
            "intervals": intervals,
            "warmup_intervals": 1,
            **config,
        },
        "setup": timings,
        "simulator_log": {"lines": len(sim_log), "last": sim_log[-1][-200:] if sim_log else ""},
        **results,
        "pyasic_rs": reference,
        "ratio": {
            "warm_polls_per_s_ours_over_pyasic": ratio(
                warm_result["polls_per_s"], reference.get("polls_per_s")
            ),
            "client_cpu_per_poll_pyasic_over_ours": ratio(
                reference.get("client_cpu_us_per_poll"), warm_result["cpu"]["workers_us_per_poll"]
            ),
        },
        "target": TARGET,
        "target_met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 miners, 3 intervals (< 1 min)")
    parser.add_argument("--miners", type=int, help="fleet size (default 10,000; quick 500)")
    parser.add_argument(
        "--intervals", type=int, help="paced intervals incl. 1 warm-up (7; quick 3)"
    )
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help="poll queues, one worker process each (FLEET_POLL_QUEUES; default 4)")  # fmt: skip
    parser.add_argument("--no-reference", action="store_true", help="skip pyasic-rs")
    parser.add_argument("--pyasic-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inventory", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pyasic_worker:
        asyncio.run(pyasic_worker(args))
        sys.stdout.flush()
        os._exit(0)  # pyasic-rs may abort the interpreter during finalisation
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
