"""Fleet reads shared by the API and the pages: samples over time, fleet totals."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.db.models import Avg, Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from fleet.models import Miner, Sample

MAX_POINTS = 2000


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
    rows = Sample.objects.filter(miner=miner, ts__gte=start, ts__lt=end).values_list(
        "ts", "hashrate_ths", "power_w", "max_temp_c"
    )
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


def _totals(queryset: QuerySet[Miner]) -> dict[str, Any]:
    agg = queryset.aggregate(
        miners=Count("id"),
        hashrate_ths=Sum("latest__hashrate_ths"),
        power_w=Sum("latest__power_w"),
        max_temp_c=Max("latest__max_temp_c"),
        avg_temp_c=Avg("latest__max_temp_c"),
        reporting=Count("id", filter=Q(latest__updated_at__isnull=False)),
    )
    hashrate, power = agg["hashrate_ths"] or 0.0, agg["power_w"] or 0.0
    by_health = dict(queryset.values_list("health").annotate(n=Count("id")).order_by())
    return {
        "miners": agg["miners"],
        "reporting": agg["reporting"],
        "hashrate_ths": round(hashrate, 3),
        "power_w": round(power, 1),
        "efficiency_jth": round(power / hashrate, 2) if hashrate else None,
        "max_temp_c": agg["max_temp_c"],
        "health": by_health,
    }


def fleet_summary(miners: QuerySet[Miner]) -> dict[str, Any]:
    """Totals of the miners the caller can see: overall, per site and per model."""
    per_site = []
    sites = miners.values("site_id", "site__name").order_by("site__name", "site_id").distinct()
    for site in sites:
        per_site.append(
            {"site": site["site_id"], "name": site["site__name"]}
            | _totals(miners.filter(site_id=site["site_id"]))
        )
    per_model = [
        {"model": row["model"], "miners": row["n"], "hashrate_ths": round(row["h"] or 0.0, 3)}
        for row in miners.values("model")
        .annotate(n=Count("id"), h=Sum("latest__hashrate_ths"))
        .order_by("-n", "model")
    ]
    return {"totals": _totals(miners), "sites": per_site, "models": per_model}
