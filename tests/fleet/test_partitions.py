"""Time partitions of the samples on PostgreSQL: the layout migration 0007 builds, inserts at
any timestamp through the ingest service, maintenance (ahead, default emptied, expired
dropped), reads across partition boundaries and the plans the reads get."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet import partitions
from fleet.models import Miner, Sample, SampleRollup
from fleet.partitions import FIVE_MINUTE, HOURLY, RAW
from fleet.poller import PollOutcome
from fleet.selectors import fleet_series
from fleet.services import retention
from fleet.services.telemetry import telemetry_ingest
from miners import Detail, Health, MinerState, MinerStatus
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.support import make_miners

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="time partitions exist on PostgreSQL only"
    ),
]
HOUR = dt.timedelta(hours=1)


def children(parent: str) -> dict[str, str]:
    """Partition name → its bounds, from the catalog."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [parent],
        )
        return dict(cursor.fetchall())


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM ONLY "{table}"')
        return int(cursor.fetchone()[0])


def ingest(miner: Miner, *at: dt.datetime) -> None:
    """Samples at ``at`` through the one ingest service, as the poller (or a node) stores them."""
    status = MinerStatus(Health.OK, MinerState.MINING, hashrate_ths=110.0, power_w=3250.0)
    for t in at:  # one poll of a miner per batch
        telemetry_ingest(
            [PollOutcome(miner.pk, status, None, t.timestamp(), 0.1, Detail.SUMMARY)],
            interval=dt.timedelta(seconds=10),
        )


def test_the_migration_builds_partitioned_tables_with_a_default_and_partitions_ahead() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, p.partstrat FROM pg_partitioned_table p"
            " JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname LIKE 'fleet_sample%%'"
        )
        strategies = dict(cursor.fetchall())
    assert strategies == {
        "fleet_sample": "r",
        "fleet_samplerollup": "l",
        "fleet_samplerollup_r300": "r",
        "fleet_samplerollup_r3600": "r",
    }
    assert set(children("fleet_samplerollup")) == {FIVE_MINUTE.parent, HOURLY.parent}
    now = timezone.now()
    for series in (RAW, FIVE_MINUTE, HOURLY):
        names = children(series.parent)
        assert names[series.default] == "DEFAULT"
        assert series.name(series.period.floor(now)) in names
    # the migration made them when the test database was created: an hour may have turned since
    made_ahead = {RAW.name(RAW.period.floor(now) + (RAW.ahead - k) * HOUR) for k in (0, 1)}
    raw_children = children(RAW.parent)
    assert made_ahead & set(raw_children), sorted(raw_children)[-3:]
    ahead_name = max(made_ahead & set(raw_children))
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [ahead_name])
        indexes = " ".join(row[0] for row in cursor.fetchall())
    # new partitions inherit the parent's indexes: the key, (miner_id, ts) and a BRIN on ts
    assert "(id, ts)" in indexes and "(miner_id, ts)" in indexes and "brin (ts)" in indexes


def test_inserts_at_any_time_land_and_maintenance_files_them(org_a: OrgWorld) -> None:
    (miner,) = make_miners(org_a, 1)
    now = timezone.now()
    tomorrow = now + dt.timedelta(days=1)  # beyond the partitions made ahead
    backfill = now - dt.timedelta(hours=30)  # a node catching up on a day-old outage
    too_old = now - dt.timedelta(days=5)  # past the horizon already
    ingest(miner, now, now + 6 * HOUR, tomorrow, backfill, too_old)
    assert Sample.objects.filter(miner=miner).count() == 5
    assert rows_in(RAW.default) == 2  # tomorrow and five days ago: no partition yet
    pruned = retention.prune(now=now)
    assert rows_in(RAW.default) == 0
    assert pruned["default_rows_moved"] == 1 and pruned["default_rows_deleted"] == 1
    assert RAW.name(RAW.period.floor(tomorrow)) in children(RAW.parent)
    stored = set(Sample.objects.filter(miner=miner).values_list("ts", flat=True))
    assert stored == {now, now + 6 * HOUR, tomorrow, backfill}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM fleet_sample WHERE miner_id = %s AND ts = %s",
            [miner.pk, tomorrow],
        )
        assert cursor.fetchone()[0] == RAW.name(RAW.period.floor(tomorrow))


def test_maintenance_creates_ahead_and_drops_whole_expired_partitions(
    org_a: OrgWorld, settings: Any
) -> None:
    (miner,) = make_miners(org_a, 1)
    hour = RAW.period.floor(timezone.now())
    old = hour - 47 * HOUR + dt.timedelta(minutes=10)
    ingest(miner, old, hour - HOUR, hour)
    later = hour + HOUR + dt.timedelta(minutes=20)  # the horizon is now 46 h 40 min ago
    retention.prune(now=later)
    names = children(RAW.parent)
    horizon = later - RAW.horizon()
    starts = sorted(s for n in names if (s := RAW.start_of(n)) is not None)
    assert starts[0] == RAW.period.floor(horizon) == hour - 47 * HOUR  # partly expired: kept
    assert all(RAW.period.after(s) > horizon for s in starts)  # wholly expired: dropped
    assert starts[-1] == RAW.period.floor(later) + RAW.ahead * HOUR
    assert Sample.objects.filter(miner=miner).count() == 3  # its partition isn't wholly past

    settings.FLEET_RAW_SAMPLE_HOURS = 2
    pruned = retention.prune(now=later)
    assert pruned["raw"] == 1 and pruned["partitions_dropped"] >= 1
    assert sorted(Sample.objects.filter(miner=miner).values_list("ts", flat=True)) == [
        hour - HOUR,
        hour,
    ]
    assert RAW.name(RAW.period.floor(old)) not in children(RAW.parent)

    now = timezone.now()
    settings.FLEET_ROLLUP_5M_DAYS = 7
    assert retention.prune(now=now)["5m"] == 0  # the weeks made at migration time were empty
    weeks = [s for n in children(FIVE_MINUTE.parent) if (s := FIVE_MINUTE.start_of(n))]
    assert min(weeks) == FIVE_MINUTE.period.floor(now - dt.timedelta(days=7))
    SampleRollup.objects.create(
        miner=miner, resolution=300, ts=now - dt.timedelta(days=20), count=1
    )
    assert rows_in(FIVE_MINUTE.default) == 1  # its week is gone: the default takes it
    assert retention.prune(now=now)["default_rows_deleted"] == 1
    assert rows_in(FIVE_MINUTE.default) == 0


def test_period_arithmetic_follows_postgres_date_trunc() -> None:
    at = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        for period in partitions.Period:
            cursor.execute("SELECT date_trunc(%s, %s::timestamptz, 'UTC')", [period.value, at])
            assert cursor.fetchone()[0] == period.floor(at)
    assert partitions.Period.MONTH.after(dt.datetime(2026, 12, 1, tzinfo=dt.UTC)).year == 2027
    assert RAW.start_of("fleet_sample_p2026120113") == dt.datetime(2026, 12, 1, 13, tzinfo=dt.UTC)
    assert RAW.start_of("fleet_sample_default") is None
    assert RAW.start_of("fleet_samplerollup_r300_p20261130") is None


def test_maintenance_inside_a_transaction_puts_the_lock_timeout_back() -> None:
    """The migration runs maintenance inside its own transaction, whose later statements
    (a foreign key onto the miners table) must wait for locks as long as the caller allows."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '7s'")
        retention.prune(now=timezone.now())
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "7s"


def test_samples_read_across_partition_boundaries(org_a: OrgWorld) -> None:
    (miner,) = make_miners(org_a, 1)
    boundary = RAW.period.floor(timezone.now()) - HOUR  # two partitions, an hour ago
    Sample.objects.bulk_create(
        Sample(miner=miner, ts=boundary + dt.timedelta(seconds=s), hashrate_ths=100.0 + s / 60)
        for s in range(-1200, 1200, 10)
    )
    body = (
        api_client_for(org_a.users["viewer"])
        .get(
            f"/api/v1/miners/{miner.pk}/samples/",
            {
                "from": (boundary - dt.timedelta(minutes=20)).isoformat(),
                "to": (boundary + dt.timedelta(minutes=20)).isoformat(),
                "step": 60,
            },
        )
        .json()
    )
    assert len(body["points"]) == 40
    hashrates = [p["hashrate_ths"] for p in body["points"]]
    assert hashrates == sorted(hashrates) and hashrates[0] < 100 < hashrates[-1]


def _plan(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # only what an index can serve
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        explained = cursor.fetchone()[0]  # psycopg decodes the JSON already
        plan: dict[str, Any] = explained[0]["Plan"]
        cursor.execute("SET LOCAL enable_seqscan = on")
    return plan


def _scans(plan: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(node type, relation, index) of every scan in the plan."""
    found = []
    if "Relation Name" in plan:
        found.append((plan["Node Type"], plan["Relation Name"], plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found.extend(_scans(child))
    return found


def _query_on(captured: CaptureQueriesContext, table: str) -> str:
    return next(q["sql"] for q in captured.captured_queries if f'FROM "{table}"' in q["sql"])


def test_samples_api_reads_only_the_partitions_of_its_range_by_index(org_a: OrgWorld) -> None:
    (miner,) = make_miners(org_a, 1)
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        response = api_client_for(org_a.users["viewer"]).get(
            f"/api/v1/miners/{miner.pk}/samples/",
            {"from": (now - 2 * HOUR).isoformat(), "to": now.isoformat(), "step": 30},
        )
    assert response.status_code == 200
    scans = _scans(_plan(_query_on(captured, "fleet_sample")))
    touched = {relation for _node, relation, _index in scans}
    assert touched <= {RAW.name(RAW.period.floor(now - k * HOUR)) for k in range(3)}
    assert len(touched) == 3 and all(node.startswith(("Index", "Bitmap")) for node, *_ in scans)
    assert all(index and index.endswith("miner_id_ts_idx") for *_rest, index in scans)


def test_dashboard_series_reads_five_minute_partitions_of_the_day_by_index(
    org_a: OrgWorld,
) -> None:
    make_miners(org_a, 3)
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        fleet_series(Miner.unscoped.filter(org=org_a.org), hours=24, end=now)
    scans = _scans(_plan(_query_on(captured, "fleet_samplerollup")))
    rollups = {r for _node, r, _i in scans if r.startswith("fleet_samplerollup")}
    weeks = {FIVE_MINUTE.name(FIVE_MINUTE.period.floor(now - k * HOUR)) for k in (0, 24)}
    assert rollups == weeks  # one or two weeks of 5-minute rollups, never the hourly ones
    assert all(node.startswith(("Index", "Bitmap")) for node, r, _i in scans if r in rollups), scans


def test_the_command_lists_partitions_and_runs_maintenance(capsys: Any) -> None:
    call_command("fleet_partitions", verbosity=2)
    listing = capsys.readouterr().out
    assert RAW.default in listing and FIVE_MINUTE.parent in listing and HOURLY.parent in listing
    call_command("fleet_partitions", "--maintain")
    assert "created" in capsys.readouterr().out


def test_a_lock_held_elsewhere_skips_the_step_instead_of_blocking(
    transactional_db: None,
) -> None:
    """Maintenance waits at most LOCK_TIMEOUT for a table lock, then retries on the next run."""
    import threading

    from django.db import connections

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute('LOCK TABLE "fleet_sample" IN ACCESS SHARE MODE')
            held.set()
            release.wait(10)
            cursor.execute("ROLLBACK")
        connections["default"].close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        started = time.monotonic()
        # an hour on, the oldest partition made at migration time has expired
        report = partitions.partitions_drop_expired(RAW, now=timezone.now() + HOUR)
        assert report.skipped >= 1 and report.dropped == 0
        assert time.monotonic() - started < 10 * report.skipped
    finally:
        release.set()
        holder.join(10)


def test_the_migration_moves_existing_rows_into_partitions(transactional_db: None) -> None:
    """From plain tables with rows (0006) to partitioned ones: rows within the horizon kept
    with their ids, each in its period's partition, the id sequences continuing after them."""
    from django.db.migrations.executor import MigrationExecutor

    plain = [("fleet", "0006_fleet_settings_and_list_index")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(plain)
    old = executor.loader.project_state(plain).apps
    org = old.get_model("accounts", "Organization").unscoped.create(name="Old", slug="old")
    site = old.get_model("accounts", "Site").unscoped.create(org=org, name="Old", slug="old")
    miner = old.get_model("fleet", "Miner").unscoped.create(
        org=org,
        site=site,
        identifier="serial:old",
        name="old",
        host="10.9.0.1",
        port=80,
        scheme="http",
        driver="antminer",
    )
    now = timezone.now()
    kept = [now - dt.timedelta(hours=h) for h in (0, 1, 30)]
    samples = old.get_model("fleet", "Sample").objects.bulk_create(
        old.get_model("fleet", "Sample")(miner=miner, ts=ts, hashrate_ths=1.0)
        for ts in [*kept, now - dt.timedelta(days=9)]  # the last one is past the horizon
    )
    rollups = old.get_model("fleet", "SampleRollup").objects.bulk_create(
        old.get_model("fleet", "SampleRollup")(miner=miner, resolution=r, ts=now - d, count=1)
        for r, d in ((300, HOUR), (300, dt.timedelta(days=60)), (3600, dt.timedelta(days=400)))
    )

    MigrationExecutor(connection).migrate(latest)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, ts, tableoid::regclass::text FROM fleet_sample ORDER BY ts")
        moved = cursor.fetchall()
        cursor.execute("SELECT id, tableoid::regclass::text FROM fleet_samplerollup ORDER BY id")
        moved_rollups = cursor.fetchall()
        cursor.execute(
            "SELECT nextval('fleet_sample_id_seq'), nextval('fleet_samplerollup_id_seq')"
        )
        next_sample, next_rollup = cursor.fetchone()
    assert [(i, ts) for i, ts, _table in moved] == sorted(
        ((s.pk, s.ts) for s in samples[:3]), key=lambda pair: pair[1]
    )
    assert all(table == RAW.name(RAW.period.floor(ts)) for _i, ts, table in moved)
    assert [i for i, _table in moved_rollups] == [r.pk for r in rollups]
    assert [t for _i, t in moved_rollups] == [
        FIVE_MINUTE.name(FIVE_MINUTE.period.floor(rollups[0].ts)),
        FIVE_MINUTE.name(FIVE_MINUTE.period.floor(rollups[1].ts)),
        HOURLY.name(HOURLY.period.floor(rollups[2].ts)),
    ]
    assert next_sample > samples[-1].pk and next_rollup > rollups[-1].pk
