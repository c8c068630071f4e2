"""The one ingest path for telemetry: the cloud poller calls it, node-pushed batches will too.

One call takes a batch of poll outcomes and writes, in a handful of statements: the latest
row per miner (bulk upsert), a sample per successful poll (bulk insert), the miners whose
health changed (bulk update, plus one activity event per transition) and the next due time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from accounts.actor import Actor
from accounts.services.activity import activity_record
from fleet import health as rules
from fleet import live
from fleet.models import Miner, MinerLatest, Sample
from fleet.models.telemetry import LATEST_FIELDS
from fleet.poller import PollOutcome
from fleet.protocol import HealthMessage, MinerDelta, TelemetryMessage, site_group
from fleet.services.fleet_settings import poll_intervals
from miners import Detail, MinerStatus

POLLER = Actor.system("poller")


@dataclass(frozen=True)
class IngestSummary:
    polled: int
    ok: int
    failed: int
    transitions: int


def _max_temp(temperatures: dict[str, Any]) -> float | None:
    keys = ("chip_max_c", "chip_avg_c", "board_avg_c")
    values = [v for v in map(temperatures.get, keys) if isinstance(v, int | float)]
    return max(values) if values else None


def _latest_from_status(
    row: MinerLatest, status: MinerStatus, at: dt.datetime, detail: Detail
) -> None:
    """A summary poll carries no boards, fans or PSUs: those keep the last full poll's. So
    does the hottest chip when a summary reads no per-chip figures (ProtoOS: `/mining` has
    only the ASIC average): without it "max temp" would drop to the average on every summary
    poll between two full ones."""
    data = status.to_dict()
    temperatures: dict[str, Any] = data["temperatures"]
    carried = (row.temperatures or {}).get("chip_max_c")
    summary_without_chips = detail is not Detail.FULL and temperatures.get("chip_max_c") is None
    if summary_without_chips and isinstance(carried, int | float):
        temperatures["chip_max_c"] = carried
    row.state = str(status.state)
    row.hashrate_ths = status.hashrate_ths
    row.power_w = status.power_w
    row.efficiency_jth = status.efficiency_jth
    row.power_target_w = status.power_target_w
    row.max_temp_c = _max_temp(temperatures)
    row.temperatures = temperatures
    row.pools = data["pools"]
    if detail is Detail.FULL:
        row.fans = data["fans"]
        row.hashboards = data["hashboards"]
        row.psus = data["psus"]
        row.issues = data["errors"]
        row.full_at = at
    row.updated_at = at
    row.failures = 0
    row.last_error = None


# what a poll rewrites in the latest row: a summary leaves the boards, fans and PSUs of the last
# FULL status alone, a failed poll only counts itself
SUMMARY_FIELDS = [
    f for f in LATEST_FIELDS if f not in ("fans", "hashboards", "psus", "issues", "full_at")
]
FAILED_FIELDS = ["polled_at", "failures", "last_error"]
# what ingest reads of the stored row: the failure count and what a failed poll's live delta
# repeats
_READ_FIELDS = ("miner_id", "failures", "state", "hashrate_ths", "power_w", "max_temp_c",
                "efficiency_jth", "updated_at", "temperatures")  # fmt: skip


@transaction.atomic
def telemetry_ingest(
    outcomes: Sequence[PollOutcome],
    *,
    scheduled: float | None = None,
    interval: dt.timedelta | None = None,
    actor: Actor = POLLER,
    schedule: bool = True,
) -> IngestSummary:
    """Store a batch of outcomes. The next due time of each miner is ``scheduled`` (the tick
    that scheduled the poll; default: the batch's first poll start) plus its org's poll
    interval (``interval`` overrides it for the whole batch). ``schedule=False``: the miners
    are polled elsewhere (by their fleet node), so the cloud's schedule is left alone."""
    ids = [o.miner_id for o in outcomes]
    miners = {
        m.pk: m
        for m in Miner.unscoped.filter(pk__in=ids).only(
            "id", "org", "site", "health", "name", "requested_power_target_w"
        )
    }
    confirmed: list[int] = []
    stored = {
        row["miner_id"]: row
        for row in MinerLatest.objects.filter(miner_id__in=ids).values(*_READ_FIELDS)
    }
    rows: dict[str, list[MinerLatest]] = {"full": [], "summary": [], "failed": []}
    samples: list[Sample] = []
    changed: list[Miner] = []
    outbox = Outbox()
    ok = 0
    for outcome in outcomes:
        miner = miners.get(outcome.miner_id)
        if miner is None:
            continue  # deleted while it was being polled
        row = MinerLatest(**stored.get(miner.pk, {"miner_id": miner.pk}))
        at = dt.datetime.fromtimestamp(outcome.started, tz=dt.UTC)
        row.polled_at = at
        if outcome.status is not None:
            ok += 1
            _latest_from_status(row, outcome.status, at, outcome.detail)
            if target_taken(miner.requested_power_target_w, row.power_target_w):
                confirmed.append(miner.pk)
            samples.append(
                Sample(
                    miner_id=miner.pk,
                    ts=at,
                    hashrate_ths=row.hashrate_ths,
                    power_w=row.power_w,
                    max_temp_c=row.max_temp_c,
                )
            )
            rows["full" if outcome.detail is Detail.FULL else "summary"].append(row)
        else:
            row.failures += 1
            row.last_error = outcome.error.to_dict() if outcome.error else None
            rows["failed"].append(row)
        health = rules.next_health(miner.health, row.failures, outcome.status, outcome.error)
        if health != miner.health:
            activity_record(
                actor=actor,
                verb="miner.health",
                org=miner.org_id,
                site=miner.site_id,
                target=miner,
                details={"from": miner.health, "to": health, "error": row.last_error},
            )
            outbox.health(miner, health)
            miner.health = health
            changed.append(miner)
        outbox.delta(miner, row)
    for kind, fields in (("full", LATEST_FIELDS), ("summary", SUMMARY_FIELDS),
                         ("failed", FAILED_FIELDS)):  # fmt: skip
        if rows[kind]:
            MinerLatest.objects.bulk_create(
                rows[kind], update_conflicts=True, unique_fields=["miner"], update_fields=fields
            )
    Sample.objects.bulk_create(samples)
    Miner.unscoped.bulk_update(changed, ["health"])
    if confirmed:
        Miner.unscoped.filter(pk__in=confirmed).update(requested_power_target_w=None)
    if schedule:
        _schedule_next(list(miners.values()), outcomes, scheduled, interval)
    transaction.on_commit(outbox.send)
    polled = sum(len(r) for r in rows.values())
    return IngestSummary(polled, ok, polled - ok, len(changed))


def _schedule_next(
    miners: list[Miner],
    outcomes: Sequence[PollOutcome],
    scheduled: float | None,
    interval: dt.timedelta | None,
) -> None:
    """One UPDATE per org (per interval) of the batch: anchor + that org's interval."""
    if not miners:
        return
    if scheduled is None:
        scheduled = min(o.started for o in outcomes)
    anchor = dt.datetime.fromtimestamp(scheduled, tz=dt.UTC)
    by_org: dict[int, list[int]] = {}
    for miner in miners:
        by_org.setdefault(miner.org_id, []).append(miner.pk)
    intervals = dict.fromkeys(by_org, interval) if interval is not None else poll_intervals(by_org)
    by_interval: dict[dt.timedelta, list[int]] = {}
    for org_id, miner_ids in by_org.items():
        by_interval.setdefault(intervals[org_id], []).extend(miner_ids)
    for every, miner_ids in by_interval.items():
        Miner.unscoped.filter(pk__in=miner_ids).update(next_poll_at=anchor + every)


def target_taken(requested: int | None, reported: float | None) -> bool:
    """Whether the rig reports the power target an action set (within 1 %)."""
    if requested is None or reported is None:
        return False
    return abs(reported - requested) <= max(1.0, requested * 0.01)


class Outbox:
    """Live updates of one ingest, sent per site once the transaction commits."""

    def __init__(self) -> None:
        self.deltas: dict[int, list[MinerDelta]] = {}
        self.events: list[tuple[int, HealthMessage]] = []

    def delta(self, miner: Miner, row: MinerLatest) -> None:
        self.deltas.setdefault(miner.site_id, []).append(
            MinerDelta(
                id=miner.pk,
                site=miner.site_id,
                health=miner.health,
                state=row.state,
                hashrate_ths=row.hashrate_ths,
                power_w=row.power_w,
                max_temp_c=row.max_temp_c,
                efficiency_jth=row.efficiency_jth,
                updated_at=row.updated_at.isoformat() if row.updated_at else None,
                stale=not rules.is_reporting(
                    miner.health, row.failures, row.updated_at is not None
                ),
            )
        )

    def health(self, miner: Miner, to: str) -> None:
        message = HealthMessage(type="health", miner=miner.pk, name=miner.name, to=to)
        self.events.append((miner.site_id, message))

    def send(self) -> None:
        for site_id, message in self.events:
            live.publish(site_group(site_id), message)
        for site_id, deltas in self.deltas.items():
            live.publish(site_group(site_id), TelemetryMessage(type="telemetry", miners=deltas))
