"""Samples over time: raw rows for ``FLEET_RAW_SAMPLE_HOURS``, 5-minute averages for
``FLEET_ROLLUP_5M_DAYS``, hourly averages for ``FLEET_ROLLUP_1H_DAYS`` — rolled up and pruned
by a periodic task (``fleet.rollup_samples``, every 5 minutes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.db.models import Avg, Count, F, Max
from django.db.models.functions import Extract, Floor
from django.utils import timezone

from fleet import partitions
from fleet.models import Sample, SampleRollup

RESOLUTIONS = (300, 3600)


def _buckets(start: dt.datetime, end: dt.datetime, seconds: int) -> list[dict[str, Any]]:
    samples = Sample.objects.filter(ts__gte=start, ts__lt=end)
    if connection.vendor == "postgresql":
        bucket = Floor(Extract(F("ts"), "epoch") / seconds)
        return list(
            samples.annotate(bucket=bucket)
            .values("miner_id", "bucket")
            .annotate(h=Avg("hashrate_ths"), p=Avg("power_w"), t=Max("max_temp_c"), n=Count("id"))
        )
    # SQLite (the embedded default, small fleets): the same sums in Python
    sums: dict[tuple[int, int], list[Any]] = {}
    rows = samples.values_list("miner_id", "ts", "hashrate_ths", "power_w", "max_temp_c")
    for miner_id, ts, h, p, t in rows.iterator(chunk_size=5000):
        acc = sums.setdefault((miner_id, int(ts.timestamp() // seconds)), [[], [], [], 0])
        acc[3] += 1
        for values, value in zip(acc[:3], (h, p, t), strict=True):
            if value is not None:
                values.append(value)
    return [
        {
            "miner_id": miner_id,
            "bucket": bucket,
            "h": sum(h) / len(h) if h else None,
            "p": sum(p) / len(p) if p else None,
            "t": max(t) if t else None,
            "n": n,
        }
        for (miner_id, bucket), (h, p, t, n) in sums.items()
    ]


@transaction.atomic
def rollup(*, now: dt.datetime | None = None, lookback: dt.timedelta | None = None) -> int:
    """(Re)compute the complete buckets of the last ``lookback`` (default 2 h) at every
    resolution; idempotent (upserts), so a missed run is caught up by the next."""
    now = now or timezone.now()
    lookback = lookback or dt.timedelta(hours=2)
    written = 0
    for seconds in RESOLUTIONS:
        end = dt.datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=dt.UTC)
        start = end - max(lookback, dt.timedelta(seconds=seconds))
        rows = _buckets(start, end, seconds)
        rollups = [
            SampleRollup(
                miner_id=row["miner_id"],
                resolution=seconds,
                ts=dt.datetime.fromtimestamp(int(row["bucket"]) * seconds, tz=dt.UTC),
                hashrate_ths=row["h"],
                power_w=row["p"],
                max_temp_c=row["t"],
                count=row["n"],
            )
            for row in rows
        ]
        SampleRollup.objects.bulk_create(
            rollups,
            update_conflicts=True,
            unique_fields=["miner", "resolution", "ts"],
            update_fields=["hashrate_ths", "power_w", "max_temp_c", "count"],
        )
        written += len(rollups)
    return written


def prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Remove what is past its horizon: on PostgreSQL whole time partitions are dropped (and
    the ones ahead created, see ``fleet.partitions``); on SQLite the rows are deleted."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        report = partitions.partitions_maintain(now=now)
        return {
            **report.rows_dropped,
            "partitions_created": report.created,
            "partitions_dropped": report.dropped,
            "default_rows_moved": report.absorbed,
            "default_rows_deleted": report.deleted,
            "partition_steps_skipped": report.skipped,
        }
    return _prune_rows(now)


@transaction.atomic
def _prune_rows(now: dt.datetime) -> dict[str, int]:
    raw, _ = Sample.objects.filter(ts__lt=now - partitions.RAW.horizon()).delete()
    five, _ = SampleRollup.objects.filter(
        resolution=300, ts__lt=now - partitions.FIVE_MINUTE.horizon()
    ).delete()
    hourly, _ = SampleRollup.objects.filter(
        resolution=3600, ts__lt=now - partitions.HOURLY.horizon()
    ).delete()
    return {"raw": raw, "5m": five, "1h": hourly}
