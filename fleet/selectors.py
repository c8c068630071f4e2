"""Fleet reads shared by the API and the pages: samples over time, fleet totals."""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Sum, Value
from django.utils import timezone

from fleet import health as rules
from fleet.models import Job, JobItem, Miner, MinerHealth, Sample, SampleRollup

MAX_POINTS = 2000
ROLLUP_STEP = 300  # the fleet chart's buckets: the 5-minute rollups


def job_items_visible(job: Job, user: Any) -> QuerySet[JobItem]:
    """The job's per-miner results the caller may see: those at a site where they may read
    miners (``JobItem.scope_filter``: the item's site, else its miner's)."""
    return job.items.filter(JobItem.visible_to(user, "miner:read"))


def jobs_visible(user: Any) -> QuerySet[Job]:
    """The jobs the caller may see (``Job.scope_filter``: one of its items at a site where
    they read miners), each with ``params_shown``: ``with_params_shown``."""
    return with_params_shown(Job.objects.restrict(user, "miner:read"), user)


def with_params_shown(jobs: QuerySet[Job], user: Any) -> QuerySet[Job]:
    """Annotates ``params_shown``: every item of the job is visible to the caller. A job's
    parameters (pool URLs and workers, a pairing's devices and node) speak of all its sites,
    so they are shown only to those who see all of them."""
    visible = JobItem.visible_to(user, "miner:read")
    if not visible:  # a superuser: everything
        return jobs.annotate(params_shown=Value(True))
    hidden = JobItem.objects.filter(job_id=OuterRef("pk")).exclude(visible)
    return jobs.annotate(params_shown=~Exists(hidden))


def job_params_shown(job: Job, user: Any) -> bool:
    shown = getattr(job, "params_shown", None)
    if shown is None:
        visible = JobItem.visible_to(user, "miner:read")
        shown = not visible or not JobItem.objects.filter(job_id=job.pk).exclude(visible).exists()
        job.params_shown = shown  # type: ignore[attr-defined]
    return bool(shown)


def samples_series(
    miner: Miner, *, start: dt.datetime | None, end: dt.datetime | None, step: int | None
) -> dict[str, Any]:
    """Hashrate, power and temperature of one miner between ``start`` and ``end`` (default: the
    last 24 h), averaged into ``step``-second buckets (default: what keeps ≤ 2,000 points)."""
    end = end or timezone.now()
    start = start or end - dt.timedelta(hours=24)
    span = max(1.0, (end - start).total_seconds())
    step = step or max(10, int(span // MAX_POINTS) + 1)
    if span / step > MAX_POINTS:
        step = int(span // MAX_POINTS) + 1
    rows = _series_rows(miner, start, end, step)
    buckets: dict[int, list[list[float]]] = defaultdict(lambda: [[], [], []])
    origin = start.timestamp()
    for ts, hashrate, power, temp in rows.iterator(chunk_size=5000):
        slot = int((ts.timestamp() - origin) // step)
        for values, value in zip(buckets[slot], (hashrate, power, temp), strict=True):
            if value is not None:
                values.append(value)
    points = []
    for slot in sorted(buckets):
        hashrate, power, temp = (round(sum(v) / len(v), 3) if v else None for v in buckets[slot])
        at = dt.datetime.fromtimestamp(origin + slot * step, tz=dt.UTC)
        points.append({"t": at, "hashrate_ths": hashrate, "power_w": power, "max_temp_c": temp})
    return {"from": start, "to": end, "step": step, "points": points}


def _series_rows(miner: Miner, start: dt.datetime, end: dt.datetime, step: int) -> Any:
    """Raw samples while they are kept and the step is fine; else 5-minute or hourly averages."""
    from django.conf import settings

    raw_since = timezone.now() - dt.timedelta(hours=settings.FLEET_RAW_SAMPLE_HOURS)
    columns = ("ts", "hashrate_ths", "power_w", "max_temp_c")
    if step < 300 and start >= raw_since:
        return Sample.objects.filter(miner=miner, ts__gte=start, ts__lt=end).values_list(*columns)
    resolution = 3600 if step >= 3600 else 300
    return SampleRollup.objects.filter(
        miner=miner, resolution=resolution, ts__gte=start, ts__lt=end
    ).values_list(*columns)


def reporting_q(prefix: str = "") -> Q:
    """The miners that report (``fleet.health.REPORTING``): their figures are current.
    ``prefix``: the path to the miner from the queried model (e.g. ``"miner__"``)."""
    return Q(
        **{
            f"{prefix}health__in": sorted(rules.REPORTING),
            f"{prefix}latest__updated_at__isnull": False,
            f"{prefix}latest__failures__lt": rules.OFFLINE_AFTER,
        }
    )


_SUMS = ("miners", "reporting", "stale", "hashrate_ths", "power_w")


def _groups(miners: QuerySet[Miner]) -> list[dict[str, Any]]:
    """One GROUP BY site, health, model over the miners and their latest rows, in site order:
    every figure of the summary is a sum (or max) of these few rows, so the fleet is read
    once. Hashrate, power and the hottest chip count the reporting miners only (an offline
    miner's last figures are from before it went away); ``stale``: the miners with a last
    reading that is not counted."""
    reporting = reporting_q()
    return list(
        miners.values("site_id", "site__name", "health", "model")
        .annotate(
            miners=Count("id"),
            reporting=Count("id", filter=reporting),
            stale=Count("id", filter=Q(latest__updated_at__isnull=False) & ~reporting),
            hashrate_ths=Sum("latest__hashrate_ths", filter=reporting),
            power_w=Sum("latest__power_w", filter=reporting),
            max_temp_c=Max("latest__max_temp_c", filter=reporting),
        )
        .order_by("site__name", "site_id")
    )


def _rollup(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a set of groups (a site's, or all of them)."""
    totals: dict[str, Any] = {key: sum(g[key] or 0 for g in groups) for key in _SUMS}
    temps = [g["max_temp_c"] for g in groups if g["max_temp_c"] is not None]
    health: dict[str, int] = defaultdict(int)
    for group in groups:
        health[group["health"]] += group["miners"]
    hashrate, power = totals["hashrate_ths"], totals["power_w"]
    return totals | {
        "hashrate_ths": round(hashrate, 3),
        "power_w": round(power, 1),
        "efficiency_jth": round(power / hashrate, 2) if hashrate else None,
        "max_temp_c": max(temps, default=None),
        "health": dict(health),
    }


def fleet_summary(miners: QuerySet[Miner]) -> dict[str, Any]:
    """Totals of the miners the caller can see: overall, per site (by name) and per model (most
    miners first). One grouped query whatever the number of sites or miners. ``reporting``
    counts the miners whose figures are summed (``fleet.health.REPORTING``): the ``ok``,
    ``degraded`` and ``default_password`` of ``health`` less those without a fresh reading
    (``stale`` + never polled)."""
    groups = _groups(miners)
    by_site: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in groups:
        by_site[(group["site__name"], group["site_id"])].append(group)
        by_model[group["model"]].append(group)
    sites = [
        {"site": site_id, "name": name} | _rollup(rows) for (name, site_id), rows in by_site.items()
    ]
    models = sorted(
        (
            {
                "model": model,
                "miners": sum(g["miners"] for g in rows),
                "reporting": sum(g["reporting"] for g in rows),
                "hashrate_ths": round(sum(g["hashrate_ths"] or 0.0 for g in rows), 3),
            }
            for model, rows in by_model.items()
        ),
        key=lambda row: (-row["miners"], row["model"]),
    )
    return {"totals": _rollup(groups), "sites": sites, "models": models}


def fleet_series(
    miners: QuerySet[Miner], *, hours: int = 24, end: dt.datetime | None = None
) -> dict[str, Any]:
    """Fleet hashrate and power of ``miners`` over the last ``hours`` from the 5-minute rollups:
    a bucket's total is the sum of its miners' averages (one GROUP BY, however large the fleet).
    The newest bucket is the last complete one the rollup task wrote. The shape is
    ``samples_series``' (plus how many miners reported)."""
    end = end or timezone.now()
    start = end - dt.timedelta(hours=hours)
    rows = (
        SampleRollup.objects.filter(
            miner__in=miners.values("pk"), resolution=ROLLUP_STEP, ts__gte=start, ts__lt=end
        )
        .values("ts")
        .annotate(hashrate=Sum("hashrate_ths"), power=Sum("power_w"), reporting=Count("miner"))
        .order_by("ts")
    )
    points = [
        {
            "t": row["ts"],
            "hashrate_ths": _rounded(row["hashrate"], 3),
            "power_w": _rounded(row["power"], 1),
            "miners": row["reporting"],
        }
        for row in rows
    ]
    return {"from": start, "to": end, "step": ROLLUP_STEP, "points": points}


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# Not mining first (worst first), then the ones hashing furthest below their model's median.
_ATTENTION: dict[str, int] = {
    MinerHealth.OFFLINE: 0,
    MinerHealth.AUTH_NEEDED: 1,
    MinerHealth.DEGRADED: 2,
}
UNDERPERFORMING = 0.95


@dataclass(frozen=True)
class Laggard:
    miner: Miner
    median_ths: float | None  # of the miner's model, among its healthy peers
    ratio: float | None  # its hashrate / that median; None when its figures are stale
    reporting: bool = True  # False: its last figures are from before it stopped reporting


def worst_performers(miners: QuerySet[Miner], *, limit: int = 10) -> list[Laggard]:
    """The miners that most need a look: offline, locked out or degraded first, then those below
    95 % of the median hashrate of healthy miners of the same model. Medians and ratios use
    reporting miners' figures only (``fleet.health.REPORTING``). One narrow read of every
    miner (the medians need them all), then the ``limit`` worst are loaded with their site."""
    read = list(
        miners.values_list(
            "pk",
            "model",
            "health",
            "latest__hashrate_ths",
            "latest__failures",
            "latest__updated_at",
        ).order_by()
    )
    reporting = {
        pk for pk, _m, health, _h, failures, at in read
        if rules.is_reporting(health, failures or 0, at is not None)
    }  # fmt: skip
    rows = [
        (pk, model, health, hashrate if pk in reporting else None)
        for pk, model, health, hashrate, _f, _at in read
    ]
    healthy: dict[str, list[float]] = defaultdict(list)
    for _pk, model, health, hashrate in rows:
        if health == MinerHealth.OK and hashrate is not None:
            healthy[model].append(hashrate)
    medians = {model: statistics.median(values) for model, values in healthy.items()}
    ranked: list[tuple[tuple[int, int, float], int, float | None, float | None]] = []
    for pk, model, health, hashrate in rows:
        median = medians.get(model)
        ratio = hashrate / median if hashrate is not None and median else None
        if health in _ATTENTION:
            ranked.append(((0, _ATTENTION[health], ratio or 0.0), pk, median, ratio))
        elif health == MinerHealth.OK and ratio is not None and ratio < UNDERPERFORMING:
            ranked.append(((1, 0, ratio), pk, median, ratio))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    worst = ranked[:limit]
    loaded = miners.select_related("site", "latest").in_bulk([pk for _key, pk, _m, _r in worst])
    return [
        Laggard(loaded[pk], median, ratio, pk in reporting)
        for _key, pk, median, ratio in worst
        if pk in loaded
    ]


_CSV_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("site", "site__name"),
    ("host", "host"),
    ("port", "port"),
    ("driver", "driver"),
    ("make", "make"),
    ("model", "model"),
    ("firmware", "firmware"),
    ("serial", "serial"),
    ("mac", "mac"),
    ("health", "health"),
    ("hashrate_ths", "latest__hashrate_ths"),
    ("power_w", "latest__power_w"),
    ("efficiency_jth", "latest__efficiency_jth"),
    ("max_temp_c", "latest__max_temp_c"),
    ("updated_at", "latest__updated_at"),
    ("rack", "rack"),
    ("position", "position"),
]


def miners_csv_rows(miners: QuerySet[Miner]) -> Iterator[str]:
    """The (filtered, ordered) miners as CSV, streamed; cells that start like a spreadsheet
    formula are neutralised as in the activity export."""
    from accounts.selectors import csv_safe

    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow([name for name, _field in _CSV_COLUMNS])
    yield flush()
    fields = [field for _name, field in _CSV_COLUMNS]
    for row in miners.values_list(*fields).iterator(chunk_size=2000):
        writer.writerow([csv_safe(v) for v in row])
        yield flush()
