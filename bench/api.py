"""`python -m bench.api [--quick]`: the fleet reads over 10,000 miners with their latest rows and
100,000 samples in PostgreSQL, through the Django test client (in-process: the whole middleware
stack, URL routing, session authentication, DRF, JSON rendering; no socket, no ASGI server).

Measured, p50 over repeated requests as an org viewer (session login, as the browser):
`GET /api/v1/miners/` first page (and sorted by hashrate) with its query count, which must not
depend on the page size; keyset pages (`?cursor=`: the first, one 7,500 rows in against
`?page=151`, the second by hashrate) with theirs; the plan PostgreSQL picks for the page query
(`EXPLAIN ANALYZE`: which index, whether it sorts); `GET /api/v1/fleet/summary/`; the fleet
dashboard page `/fleet/`.
Reference side by side: the same list with naive ORM, i.e. the same viewset, serializer and URL
with the queryset's `select_related("latest")` taken away, so every row's latest figures are a
query of their own (N+1). Prints one JSON object on its last line. The data lives in a scratch
database created and dropped by the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import random
import time
from typing import Any

from bench._django import django_on_scratch_db, make_world, ms, pct

PASSWORD = "bench-api-pw-1"
MINERS = 10_000
SAMPLES = 100_000
SITES = 10
PROTO_SHARE = 0.6
ANTMINER_MODELS = ("Antminer S19 XP", "Antminer S21", "Antminer S19j Pro")
TARGET = {"list_p50_ms": 50.0, "summary_p50_ms": 100.0}


# --- data -----------------------------------------------------------------------------------
async def _real_statuses() -> dict[str, tuple[Any, Any, list[str]]]:
    """One FULL status per kind from a two-miner simulator in this process, read by our drivers:
    the latest rows carry what a real poll stores (boards, fans, PSUs, pools, errors)."""
    from miners import Credentials, Detail, HttpClient, Registry, default_drivers
    from miners.sim import FleetSpec, SimFleet

    offset = 0 if os.geteuid() == 0 else 20_000
    for _attempt in range(8):
        base = f"127.{random.randint(160, 250)}.{random.randint(0, 255)}.1"
        fleet = SimFleet(
            FleetSpec(
                proto=1,
                antminer=1,
                base=base,
                port_offset=offset,
                password=PASSWORD,
                stats_delay=0.0,
            )
        )
        try:
            await fleet.start()
        except OSError:
            continue
        break
    else:
        raise RuntimeError("no free loopback block for the two simulated miners")
    http = HttpClient()
    try:
        registry = Registry(default_drivers(include_pyasic=False, http=http))
        found: dict[str, tuple[Any, Any, list[str]]] = {}
        for entry in fleet.inventory:
            port = entry["ports"]["https"] if entry["kind"] == "protoos" else entry["ports"]["rpc"]
            info = await registry.identify_any(entry["host"], [port], timeout=10, credentials=None)
            if info is None:
                raise RuntimeError(f"{entry['host']} did not identify")
            device = registry.get(info.driver).connect(
                info, Credentials(password=PASSWORD), timeout=10
            )
            status = await device.status(Detail.FULL)
            caps = sorted(str(c) for c in device.capabilities)
            await device.close()
            found[entry["kind"]] = (info, status, caps)
        return found
    finally:
        await http.close()
        await fleet.stop()


def build_fleet(miners: int, samples: int) -> dict[str, Any]:
    """Miner rows in bulk; latest rows in bulk, shaped by one real `telemetry_ingest` per kind
    (FULL statuses from the simulator); samples in bulk up to `samples`; then the rollups."""
    from django.utils import timezone

    from fleet.models import Miner, MinerHealth, MinerLatest, Sample
    from fleet.poller import PollOutcome
    from fleet.services.identity import identifier_for, normalise_mac
    from fleet.services.telemetry import telemetry_ingest
    from miners import Detail

    clock = time.monotonic()
    statuses = asyncio.run(_real_statuses())
    world = make_world(sites=SITES)
    rng = random.Random(11)
    now = timezone.now()
    rows = []
    for i in range(miners):
        kind = "protoos" if i < miners * PROTO_SHARE else "antminer"
        template, _status, caps = statuses[kind]
        model = template.model if kind == "protoos" else ANTMINER_MODELS[i % len(ANTMINER_MODELS)]
        host = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        info = dataclasses.replace(
            template,
            host=host,
            model=model,
            serial=f"BENCH{i:08d}",
            mac=f"02:be:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            hostname=f"rig-{i:05d}",
        )
        rows.append(
            Miner(
                org=world.org,
                site=world.sites[i % len(world.sites)],
                identifier=identifier_for(info),
                name=f"rig-{i:05d}",
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
                rack=f"R{i // 40:03d}",
                position=str(i % 40),
            )
        )
    created = Miner.unscoped.bulk_create(rows, batch_size=2000)
    timings = {"miners_s": time.monotonic() - clock}

    clock = time.monotonic()
    # One real ingest per kind (the one ingest path), then every other miner's latest row is a
    # copy of its kind's with its own figures, bulk-created.
    outcome_fields = {f.name for f in dataclasses.fields(PollOutcome)}
    extra = {"detail": Detail.FULL} if "detail" in outcome_fields else {}
    started = now.timestamp() - 5
    by_kind: dict[str, Any] = {}
    for miner in created:
        by_kind.setdefault(miner.driver, miner)
    telemetry_ingest(
        [
            PollOutcome(m.pk, statuses[m.driver][1], None, started, 0.05, **extra)
            for m in by_kind.values()
        ],
        interval=dt.timedelta(seconds=10),
    )
    templates = {
        driver: {
            f.attname: getattr(MinerLatest.objects.get(miner_id=m.pk), f.attname)
            for f in MinerLatest._meta.concrete_fields
            if f.attname != "miner_id"
        }
        for driver, m in by_kind.items()
    }
    seeded = {m.pk for m in by_kind.values()}
    latest_rows = []
    for miner in created:
        if miner.pk in seeded:
            continue
        values = dict(templates[miner.driver])
        if rng.random() < 0.03:  # never answered: no figures, one failure
            values.update(
                updated_at=None, failures=1, hashrate_ths=None, power_w=None,
                efficiency_jth=None, max_temp_c=None,
                last_error={"kind": "unreachable", "message": "connection refused"},
            )  # fmt: skip
        elif values.get("hashrate_ths"):
            values["hashrate_ths"] = round(values["hashrate_ths"] * rng.uniform(0.85, 1.05), 3)
            values["max_temp_c"] = round(rng.uniform(55, 85), 1)
        latest_rows.append(MinerLatest(miner_id=miner.pk, **values))
    MinerLatest.objects.bulk_create(latest_rows, batch_size=1000)
    Miner.unscoped.filter(health=MinerHealth.UNKNOWN).update(health=MinerHealth.OK)
    ids = [m.pk for m in created]
    rng.shuffle(ids)
    spread = {MinerHealth.DEGRADED: 0.05, MinerHealth.OFFLINE: 0.03, MinerHealth.AUTH_NEEDED: 0.02}
    cursor = 0
    for health, share in spread.items():
        chosen = ids[cursor : cursor + int(share * len(ids))]
        cursor += len(chosen)
        Miner.unscoped.filter(pk__in=chosen).update(health=health)
    timings["latest_s"] = time.monotonic() - clock

    clock = time.monotonic()
    missing = max(0, samples - Sample.objects.count())
    per_miner = -(-missing // len(created))
    batch: list[Sample] = []
    made = 0
    for miner in created:
        for k in range(per_miner):
            if made >= missing:
                break
            batch.append(
                Sample(
                    miner_id=miner.pk,
                    ts=now - dt.timedelta(seconds=60 + k * 7200 / per_miner),
                    hashrate_ths=rng.uniform(90, 140),
                    power_w=rng.uniform(3000, 3600),
                    max_temp_c=rng.uniform(55, 80),
                )
            )
            made += 1
        if len(batch) >= 5000:
            Sample.objects.bulk_create(batch)
            batch.clear()
    Sample.objects.bulk_create(batch)
    timings["samples_s"] = time.monotonic() - clock
    clock = time.monotonic()
    rollups = 0
    try:
        from fleet.services.retention import rollup

        rollups = rollup(now=now, lookback=dt.timedelta(hours=3))
    except ImportError:  # older trees have no rollups
        pass
    timings["rollups_s"] = time.monotonic() - clock
    from django.db import connection

    with connection.cursor() as db:
        # as autovacuum would have by now: statistics, and the visibility map that lets
        # COUNT(*) read an index instead of every miner row
        db.execute("VACUUM ANALYZE")
    return {
        "world": world,
        "miners": len(created),
        "samples": Sample.objects.count(),
        "rollups": rollups,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }


# --- measuring ------------------------------------------------------------------------------
def timed(client: Any, path: str, reps: int) -> dict[str, Any]:
    for _ in range(3):  # warm-up: caches, connection, first-request imports
        response = client.get(path)
    times, cpu = [], []
    for _ in range(reps):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if response.status_code != 200:
            return {"status": response.status_code, "body": response.content[:200].decode()}
    return {
        "status": 200,
        "p50_ms": ms(pct(times, 0.5)),
        "p90_ms": ms(pct(times, 0.9)),
        "p99_ms": ms(pct(times, 0.99)),
        # this process only (Django, DRF, rendering; not PostgreSQL): steadier than the wall
        # time on a shared box
        "cpu_p50_ms": ms(pct(cpu, 0.5)),
        "reps": reps,
        "bytes": len(response.content),
    }


def queries(client: Any, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.content[:200])
    return len(captured.captured_queries)


def plan(client: Any, path: str) -> dict[str, Any]:
    """`EXPLAIN ANALYZE` of the page query (the one with a LIMIT) that `path` runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    sql = next(
        q["sql"]
        for q in captured.captured_queries
        if " LIMIT " in q["sql"] and '"fleet_miner"' in q["sql"]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        explained = cursor.fetchone()[0]
    root = (json.loads(explained) if isinstance(explained, str) else explained)[0]
    nodes, todo = [], [root["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return {
        "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        "sorts": sum(n["Node Type"] == "Sort" for n in nodes),
        "seq_scans": sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}),
        "execution_ms": round(root["Execution Time"], 2),
    }


def deep_cursor(client: Any, rows: int, size: int) -> str:
    """A `next` link `rows` rows in (walked 500 at a time), for pages of `size`."""
    from rest_framework.utils.urls import replace_query_param

    link = f"/api/v1/miners/?cursor=&page_size={min(500, rows)}"
    for _ in range(rows // 500 or 1):
        link = json.loads(client.get(link).content)["next"]
    return str(replace_query_param(link, "page_size", size))


def naive_list(client: Any, path: str, reps: int) -> dict[str, Any]:
    """The same URL, viewset and serializer, without `select_related("latest")`: N+1."""
    from fleet.api.views import MinerViewSet
    from fleet.models import Miner

    original = MinerViewSet.queryset
    MinerViewSet.queryset = Miner.unscoped.all()
    try:
        result = timed(client, path, reps)
        result["queries"] = queries(client, path)
        return result
    finally:
        MinerViewSet.queryset = original


def run(args: argparse.Namespace) -> dict[str, Any]:
    reps = 20 if args.quick else 200
    # the bench makes thousands of requests a minute as one user: lift the throttle's rate
    # (the throttle itself still runs on every request)
    env = {"API_RATE_USER": "1000000/minute", "API_RATE_TOKEN": "1000000/minute"}
    with django_on_scratch_db("api", extra_env=env) as database:
        from django.test import Client, override_settings

        # a checkout's staticfiles.json may predate the newest vendored assets: resolve static
        # URLs from the finders (what DEBUG/tests do), so a stale manifest can't fail the page
        plain_static = override_settings(
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            }
        )
        plain_static.enable()
        clock = time.monotonic()
        data = build_fleet(MINERS, SAMPLES)
        setup_s = round(time.monotonic() - clock, 1)
        client = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False)
        client.force_login(data["world"].viewer)
        first = json.loads(client.get("/api/v1/miners/").content)
        assert first["count"] == data["miners"], first.get("count")
        assert first["results"][0]["latest"] is not None or first["results"][1]["latest"]
        by_hashrate = "/api/v1/miners/?ordering=-hashrate_ths"
        deep = deep_cursor(client, 7500, 50)
        second_by_hashrate = json.loads(client.get(f"{by_hashrate}&cursor=").content)["next"]
        lists = {
            "first_page": timed(client, "/api/v1/miners/", reps),
            "first_page_by_hashrate": timed(client, by_hashrate, reps),
            "page_151": timed(client, "/api/v1/miners/?page=151", reps),
            "cursor_first_page": timed(client, "/api/v1/miners/?cursor=", reps),
            "cursor_7500_rows_in": timed(client, deep, reps),
            "cursor_second_by_hashrate": timed(client, second_by_hashrate, reps),
        }
        counts = {
            "page_size_10": queries(client, "/api/v1/miners/?page_size=10"),
            "page_size_50": queries(client, "/api/v1/miners/"),
            "page_size_200": queries(client, "/api/v1/miners/?page_size=200"),
            "page_2": queries(client, "/api/v1/miners/?page=2"),
            "by_hashrate": queries(client, by_hashrate),
        }
        cursor_counts = {
            "first_size_10": queries(client, "/api/v1/miners/?cursor=&page_size=10"),
            "first_size_200": queries(client, "/api/v1/miners/?cursor=&page_size=200"),
            "7500_rows_in": queries(client, deep),
            "second_by_hashrate": queries(client, second_by_hashrate),
        }
        plans = {
            "first_page": plan(client, "/api/v1/miners/"),
            "cursor_7500_rows_in": plan(client, deep),
            "page_151": plan(client, "/api/v1/miners/?page=151"),
            "by_hashrate": plan(client, by_hashrate),
        }
        naive = naive_list(client, "/api/v1/miners/", reps)
        summary = timed(client, "/api/v1/fleet/summary/", reps)
        summary["queries"] = queries(client, "/api/v1/fleet/summary/")
        dashboard = timed(client, "/fleet/", max(10, reps // 4))
        if dashboard.get("status") == 200:
            dashboard["queries"] = queries(client, "/fleet/")
    list_p50 = lists["first_page"].get("p50_ms")
    constant = len(set(counts.values())) == 1 and len(set(cursor_counts.values())) == 1
    return {
        "bench": "api",
        "mode": "quick" if args.quick else "full",
        "client": "django.test.Client in-process (full middleware, session auth), no socket",
        "data": {
            "miners": data["miners"],
            "sites": SITES,
            "samples": data["samples"],
            "rollups": data["rollups"],
            "setup_s": setup_s,
            "timings": data["timings"],
            "database": database,
        },
        "list": {
            **lists,
            "queries": counts,
            "cursor_queries": cursor_counts,
            "constant_query_count": constant,
            "plans": plans,
        },
        "naive_list": naive,
        "summary": summary,
        "dashboard_page": dashboard,
        "ratio": {
            "list_p50_naive_over_ours": (
                round(naive["p50_ms"] / list_p50, 2) if list_p50 and naive.get("p50_ms") else None
            ),
            "list_queries_naive_over_ours": round(naive["queries"] / counts["page_size_50"], 2),
        },
        "box_load_1min": round(os.getloadavg()[0], 2),  # 2 cores, shared with other runs
        "target": TARGET,
        "target_met": bool(
            list_p50
            and list_p50 <= TARGET["list_p50_ms"]
            and constant
            and (summary.get("p50_ms") or 1e9) <= TARGET["summary_p50_ms"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
