"""Time partitions of the sample tables on PostgreSQL (SQLite, the embedded default, keeps plain
tables and prunes by DELETE in ``fleet.services.retention``).

Layout (created by migration 0007):

- ``fleet_sample`` — raw samples, ``PARTITION BY RANGE (ts)``, one partition per UTC hour
  (``fleet_sample_p2026120113``). At 10,000 miners every 10 s that is 3.6 M rows a partition,
  so the partition being written keeps its ``(miner_id, ts)`` index small and cached, and the
  retention horizon (hours) is honoured to the hour by dropping whole partitions.
- ``fleet_samplerollup`` — ``PARTITION BY LIST (resolution)`` into ``…_r300`` (weekly range
  partitions from Monday 00:00 UTC) and ``…_r3600`` (monthly), so each resolution expires on
  its own horizon.

Every range level has a DEFAULT partition so that an insert never fails, whatever its
timestamp (a node's backfill, a clock far off). Maintenance keeps it empty: it creates the
partitions ahead of time and moves any row that landed in the default into its proper
partition, so attaching a partition never has to scan more than a handful of rows.

Every step is its own short transaction with a lock timeout: a DDL statement that would queue
behind a long query (and block the inserts queued behind it) gives up and is retried on the
next run, which is why partitions are created well ahead.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, connections, transaction
from django.db.backends.utils import CursorWrapper

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "1s"
ABSORB_LIMIT = 100  # periods moved out of a default partition per run
_ADVISORY_KEY = 0x52570007  # serializes maintenance across workers


class Period(enum.Enum):
    HOUR = "hour"
    WEEK = "week"  # ISO weeks: Monday 00:00 UTC, as PostgreSQL's date_trunc('week')
    MONTH = "month"

    def floor(self, at: dt.datetime) -> dt.datetime:
        at = at.astimezone(dt.UTC)
        if self is Period.HOUR:
            return at.replace(minute=0, second=0, microsecond=0)
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        if self is Period.WEEK:
            return day - dt.timedelta(days=day.weekday())
        return day.replace(day=1)

    def after(self, start: dt.datetime) -> dt.datetime:
        """The start of the period following the one that starts at ``start``."""
        if self is Period.HOUR:
            return start + dt.timedelta(hours=1)
        if self is Period.WEEK:
            return start + dt.timedelta(days=7)
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)

    @property
    def label_format(self) -> str:
        return {"hour": "%Y%m%d%H", "week": "%Y%m%d", "month": "%Y%m"}[self.value]


@dataclass(frozen=True)
class RangeSeries:
    """One range-partitioned table of samples and how long its rows are kept."""

    key: str  # as reported by retention: raw, 5m, 1h
    parent: str
    period: Period
    ahead: int  # periods created ahead of the current one
    setting: str  # the retention setting
    unit: str  # its unit: hours or days

    def horizon(self) -> dt.timedelta:
        return dt.timedelta(**{self.unit: getattr(settings, self.setting)})

    @property
    def default(self) -> str:
        return f"{self.parent}_default"

    def name(self, start: dt.datetime) -> str:
        return f"{self.parent}_p{start:{self.period.label_format}}"

    def start_of(self, name: str) -> dt.datetime | None:
        """The start of a partition this module named, None for any other table."""
        match = re.fullmatch(rf"{re.escape(self.parent)}_p(\d+)", name)
        if match is None:
            return None
        try:
            parsed = dt.datetime.strptime(match[1], self.period.label_format)
        except ValueError:
            return None
        return parsed.replace(tzinfo=dt.UTC)


RAW = RangeSeries("raw", "fleet_sample", Period.HOUR, 12, "FLEET_RAW_SAMPLE_HOURS", "hours")
FIVE_MINUTE = RangeSeries(
    "5m", "fleet_samplerollup_r300", Period.WEEK, 2, "FLEET_ROLLUP_5M_DAYS", "days"
)
HOURLY = RangeSeries(
    "1h", "fleet_samplerollup_r3600", Period.MONTH, 2, "FLEET_ROLLUP_1H_DAYS", "days"
)
SERIES = (RAW, FIVE_MINUTE, HOURLY)


@dataclass(frozen=True)
class Partition:
    name: str
    start: dt.datetime | None  # None for the default partition
    end: dt.datetime | None
    rows: int  # planner statistics (-1: never analysed)
    bytes: int


@dataclass
class MaintenanceReport:
    created: int = 0
    dropped: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)  # per series key
    absorbed: int = 0  # rows moved out of a default partition
    deleted: int = 0  # expired rows deleted from a default partition
    skipped: int = 0  # steps that gave up on a lock, retried next run


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


def table_sql(template: str, **tables: str) -> str:
    """``template`` with its ``{placeholders}`` filled by table names, quoted. The names come
    from this module's constants and the catalog, never from input; each is checked anyway."""
    for name in tables.values():
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a table name: {name!r}")
    return template.format(**{key: f'"{name}"' for key, name in tables.items()})


def _literal(at: dt.datetime) -> str:
    return "'" + at.astimezone(dt.UTC).isoformat() + "'"


def _bounds(series: RangeSeries, start: dt.datetime) -> str:
    return f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(series.period.after(start))})"


# a lock not granted within LOCK_TIMEOUT, or rows of the period that arrived in the default
# partition meanwhile: the step is retried by the next run
_RETRIED = (OperationalError, IntegrityError)


@contextmanager
def _step(using: str) -> Iterator[CursorWrapper]:
    """One short maintenance transaction: lock timeout, serialized across workers. Inside an
    outer transaction (the migration) the caller's lock timeout is put back afterwards."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_KEY])
        yield cursor
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def partitions_list(series: RangeSeries, *, using: str = DEFAULT_DB_ALIAS) -> list[Partition]:
    """The partitions of ``series``, oldest first, the default partition last."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid)"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            [series.parent],
        )
        rows = cursor.fetchall()
    found = []
    for name, tuples, size in rows:
        start = series.start_of(name)
        end = series.period.after(start) if start else None
        found.append(Partition(name, start, end, int(tuples), int(size)))
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(found, key=lambda p: (p.start or far, p.name))


def _wanted(series: RangeSeries, now: dt.datetime) -> list[dt.datetime]:
    """Period starts from the oldest one still within the horizon to ``ahead`` past now."""
    start = series.period.floor(now - series.horizon())
    last = series.period.floor(now)
    for _ in range(series.ahead):
        last = series.period.after(last)
    starts = []
    while start <= last:
        starts.append(start)
        start = series.period.after(start)
    return starts


def partitions_ensure(
    series: RangeSeries, *, now: dt.datetime, using: str = DEFAULT_DB_ALIAS
) -> MaintenanceReport:
    """Create the missing partitions from the horizon to ``ahead`` periods past now."""
    report = MaintenanceReport()
    existing = {p.name for p in partitions_list(series, using=using)}
    for start in _wanted(series, now):
        name = series.name(start)
        if name in existing:
            continue
        try:
            with _step(using) as cursor:
                cursor.execute(
                    table_sql(
                        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} ",
                        name=name,
                        parent=series.parent,
                    )
                    + _bounds(series, start)
                )
        except _RETRIED as exc:
            log.warning("could not create partition %s now (%s), retrying next run", name, exc)
            report.skipped += 1
            continue
        report.created += 1
    return report


def default_absorb(
    series: RangeSeries, *, now: dt.datetime, using: str = DEFAULT_DB_ALIAS
) -> MaintenanceReport:
    """Empty the default partition: rows past the horizon are deleted, the others move into
    their period's partition (created for them)."""
    report = MaintenanceReport()
    oldest = series.period.floor(now - series.horizon())
    try:
        with _step(using) as cursor:
            cursor.execute(
                table_sql("DELETE FROM {default} WHERE ts < %s", default=series.default), [oldest]
            )
            report.deleted = cursor.rowcount
            cursor.execute(
                table_sql(
                    "SELECT DISTINCT date_trunc(%s, ts, 'UTC') FROM {default} LIMIT %s",
                    default=series.default,
                ),
                [series.period.value, ABSORB_LIMIT],
            )
            starts = sorted(row[0] for row in cursor.fetchall())
    except _RETRIED as exc:
        log.warning("could not read %s now (%s), retrying next run", series.default, exc)
        report.skipped += 1
        return report
    for start in starts:
        try:
            report.absorbed += _absorb_period(series, start, using)
        except _RETRIED as exc:
            log.warning("could not absorb %s into a partition (%s)", series.default, exc)
            report.skipped += 1
            continue
        report.created += 1
    return report


def _absorb_period(series: RangeSeries, start: dt.datetime, using: str) -> int:
    start = series.period.floor(start)
    end = series.period.after(start)
    with _step(using) as cursor:
        tables = {"parent": series.parent, "default": series.default, "name": series.name(start)}
        execute = cursor.execute
        execute(table_sql("CREATE TEMP TABLE rw_absorb (LIKE {parent}) ON COMMIT DROP", **tables))
        execute(
            table_sql(
                "WITH moved AS (DELETE FROM {default} WHERE ts >= %s AND ts < %s"
                " RETURNING *) INSERT INTO rw_absorb SELECT * FROM moved",
                **tables,
            ),
            [start, end],
        )
        moved: int = cursor.rowcount
        execute(
            table_sql("CREATE TABLE {name} PARTITION OF {parent} ", **tables)
            + _bounds(series, start)
        )
        execute(table_sql("INSERT INTO {parent} SELECT * FROM rw_absorb", **tables))
        execute("DROP TABLE rw_absorb")
    return moved


def partitions_drop_expired(
    series: RangeSeries, *, now: dt.datetime, using: str = DEFAULT_DB_ALIAS
) -> MaintenanceReport:
    """Drop the partitions whose whole period is past the horizon; the partially expired oldest
    one stays until it is entirely past (reads never ask for raw rows beyond the horizon)."""
    report = MaintenanceReport(rows_dropped={series.key: 0})
    horizon = now - series.horizon()
    for partition in partitions_list(series, using=using):
        if partition.end is None or partition.end > horizon:
            continue
        try:
            with _step(using) as cursor:
                rows = partition.rows
                if rows < 0:  # never analysed (young or small): count it
                    cursor.execute(table_sql("SELECT count(*) FROM {p}", p=partition.name))
                    rows = cursor.fetchone()[0]
                # rows inserted earlier in this transaction still owe their deferred foreign
                # key checks, which DROP refuses to leave pending: run them now
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(table_sql("DROP TABLE {p}", p=partition.name))
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        except _RETRIED as exc:
            log.warning("could not drop %s now (%s), retrying next run", partition.name, exc)
            report.skipped += 1
            continue
        report.dropped += 1
        report.rows_dropped[series.key] += rows
    return report


def _merge(reports: Iterable[MaintenanceReport]) -> MaintenanceReport:
    total = MaintenanceReport()
    for report in reports:
        total.created += report.created
        total.dropped += report.dropped
        total.absorbed += report.absorbed
        total.deleted += report.deleted
        total.skipped += report.skipped
        for key, rows in report.rows_dropped.items():
            total.rows_dropped[key] = total.rows_dropped.get(key, 0) + rows
    return total


def partitions_maintain(
    *, now: dt.datetime, using: str = DEFAULT_DB_ALIAS, drop: bool = True
) -> MaintenanceReport:
    """Empty the default partitions, create ahead, drop what expired (unless ``drop`` is off)."""
    reports = []
    for series in SERIES:
        reports.append(default_absorb(series, now=now, using=using))
        reports.append(partitions_ensure(series, now=now, using=using))
        if drop:
            reports.append(partitions_drop_expired(series, now=now, using=using))
    return _merge(reports)
