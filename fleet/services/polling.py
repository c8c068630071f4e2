"""Which miners are due, and one shard's poll from loading targets to ingest.

The schedule: the beat ticks every ``beat`` seconds (``CELERY_BEAT_SCHEDULE``) and claims the
miners due before the middle of the next tick, so a poll starts at the tick nearest its due
time instead of up to a whole tick late; ingest counts the next due time from the tick that
scheduled the poll (plus the org's interval), so the period is the interval, without drift.

Affinity: a miner always goes to queue ``poll.<id % FLEET_POLL_QUEUES>``, and each queue has one
worker process, so its ProtoOS token and keep-alive connections stay in one process (a second
process logging in would revoke the first one's session).

Backlog: a queue whose worker hasn't yet started the shards of an earlier tick gets nothing new
(its due miners wait, unclaimed, for the worker to catch up) instead of the same miners twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.functions import Mod
from django.utils import timezone

from fleet import dial, runtime
from fleet.crypto import SecretError
from fleet.models import Miner
from fleet.netguard import AddressRefused
from fleet.observability import POLL_ERRORS, POLL_SECONDS, SHARD_SECONDS
from fleet.poller import PollOutcome, PollTarget, poll_targets, shard_budget
from fleet.services.credentials import credentials_for
from fleet.services.telemetry import IngestSummary, telemetry_ingest
from miners import Detail, MinerError, Registry

log = logging.getLogger(__name__)

BEAT_TASK = "poll-due-miners"
# a queue counts as backed up only while its oldest unstarted tick is younger than this: a lost
# message (a broker restart) must not stop a queue for good
BACKLOG_FORGET_S = 60.0
_SENT, _TAKEN = "fleet:poll:sent:{}", "fleet:poll:taken:{}"


@dataclass(frozen=True)
class PollSettings:
    interval: dt.timedelta  # the deployment's default; an org's FleetSettings overrides it
    shard_size: int
    concurrency: int
    deadline: float
    queues: int
    beat: float


def poll_settings() -> PollSettings:
    return PollSettings(
        interval=dt.timedelta(seconds=settings.FLEET_POLL_INTERVAL),
        shard_size=settings.FLEET_POLL_SHARD_SIZE,
        concurrency=settings.FLEET_POLL_CONCURRENCY,
        deadline=settings.FLEET_POLL_DEADLINE,
        queues=settings.FLEET_POLL_QUEUES,
        beat=float(settings.CELERY_BEAT_SCHEDULE[BEAT_TASK]["schedule"]),
    )


@dataclass(frozen=True)
class Shard:
    queue: int  # poll.<queue>: every miner in it has id % FLEET_POLL_QUEUES == queue
    miner_ids: list[int]
    scheduled: float  # the tick's time (epoch s): ingest counts the next due time from it


def queue_of(miner_id: int, queues: int | None = None) -> int:
    return miner_id % (queues or settings.FLEET_POLL_QUEUES)


def backed_up_queues(now: float, queues: int) -> set[int]:
    """Queues whose worker hasn't started the last tick's shards yet."""
    keys = [key.format(k) for k in range(queues) for key in (_SENT, _TAKEN)]
    marks = cache.get_many(keys)
    busy = set()
    for k in range(queues):
        sent, taken = marks.get(_SENT.format(k)), marks.get(_TAKEN.format(k), 0.0)
        if sent is not None and taken < sent and now - sent < BACKLOG_FORGET_S:
            busy.add(k)
    return busy


def mark_sent(shards: Sequence[Shard]) -> None:
    cache.set_many({_SENT.format(s.queue): s.scheduled for s in shards}, BACKLOG_FORGET_S * 2)


def _mark_taken(queue: int, scheduled: float) -> None:
    cache.set(_TAKEN.format(queue), scheduled, BACKLOG_FORGET_S * 2)


@transaction.atomic
def due_shards(*, now: dt.datetime | None = None, limit: int = 100_000) -> list[Shard]:
    """Claim the miners due before the middle of the next tick (so an overlapping tick doesn't
    take them again) and split them into shards per queue. Fleet-node miners are polled by
    their node, not here; queues still busy with an earlier tick are skipped."""
    config = poll_settings()
    now = now or timezone.now()
    horizon = now + dt.timedelta(seconds=config.beat / 2)
    busy = backed_up_queues(now.timestamp(), config.queues)
    due_miners = Miner.unscoped.alias(queue=Mod("id", config.queues)).filter(
        next_poll_at__lt=horizon, managed_by="cloud"
    )
    if busy:
        due_miners = due_miners.exclude(queue__in=busy)
    due = list(
        due_miners.select_for_update(skip_locked=True)
        .order_by("next_poll_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    if due:
        # the lease, should the shard be lost: ingest sets the real next time
        claim = now + config.interval + dt.timedelta(seconds=config.deadline)
        Miner.unscoped.filter(pk__in=due).update(next_poll_at=claim)
    groups: dict[int, list[int]] = {}
    for miner_id in due:
        groups.setdefault(queue_of(miner_id, config.queues), []).append(miner_id)
    size, at = max(1, config.shard_size), now.timestamp()
    return [
        Shard(queue, ids[i : i + size], at)
        for queue, ids in sorted(groups.items())
        for i in range(0, len(ids), size)
    ]


class _Refused(MinerError):
    kind = "refused"


def _detail(miner: Miner, full_before: dt.datetime) -> Detail:
    """Boards, fans and PSUs (a FULL status) every ``FLEET_FULL_STATUS_INTERVAL``; the cheap
    summary in between. It depends on the stored ``full_at`` only, so a restarted worker's
    first poll of a rig read fully a moment ago is a summary."""
    latest = getattr(miner, "latest", None)
    full_at = latest.full_at if latest is not None else None
    return Detail.FULL if full_at is None or full_at < full_before else Detail.SUMMARY


# what a poll needs of the row (Miner.device_info_for_dial, credentials_for): a deferred field
# read in the loop would be a query per miner
_TARGET_FIELDS = (
    "id",
    "org_id",
    "driver",
    "make",
    "model",
    "host",
    "port",
    "username",
    "secret",
    "credential_version",
    "device_info",
    "latest__full_at",
)


def _targets(miner_ids: list[int]) -> tuple[list[PollTarget], list[PollOutcome]]:
    targets, refused = [], []
    now = timezone.now().timestamp()
    full_before = timezone.now() - dt.timedelta(seconds=settings.FLEET_FULL_STATUS_INTERVAL)
    miners = (
        Miner.unscoped.filter(pk__in=miner_ids, managed_by="cloud")
        .select_related("latest")
        .only(*_TARGET_FIELDS)
    )
    for miner in miners:
        try:
            dial.check_address(miner.host)
            credentials = credentials_for(miner)
        except (AddressRefused, SecretError) as exc:
            refused.append(PollOutcome(miner.pk, None, _Refused(str(exc)), now, 0.0))
            continue
        info = miner.device_info_for_dial()
        targets.append(PollTarget(miner.pk, info, credentials, _detail(miner, full_before)))
    return targets, refused


def poll_shard(
    miner_ids: list[int], *, queue: int | None = None, scheduled: float | None = None
) -> IngestSummary:
    """Poll these miners concurrently (one deadline each) and ingest what came back.
    ``queue`` and ``scheduled`` come from the beat's ``Shard`` (the task passes them on)."""
    if queue is not None and scheduled is not None:
        _mark_taken(queue, scheduled)
    config = poll_settings()
    started = time.time()
    # on schedule: keep the tick's time (no drift); a shard that waited longer than a tick
    # (a backlog, the cold start) counts from its own start, so a bunched fleet spreads out
    anchor = scheduled if scheduled is not None and started - scheduled < config.beat else started
    with SHARD_SECONDS.time():
        return _poll_shard(miner_ids, config, anchor)


def _poll_shard(miner_ids: list[int], config: PollSettings, anchor: float) -> IngestSummary:
    targets, refused = _targets(miner_ids)
    budget = shard_budget(targets, concurrency=config.concurrency, deadline=config.deadline)

    async def work(registry: Registry) -> list[PollOutcome]:
        return await poll_targets(
            registry,
            targets,
            concurrency=config.concurrency,
            deadline=config.deadline,
            budget=budget,
        )

    # poll_targets returns at its budget with what finished; this is only the backstop
    outcomes = runtime.run(work, timeout=budget + 10)
    for outcome in outcomes:
        POLL_SECONDS.observe(outcome.seconds)
    for outcome in [*outcomes, *refused]:
        if outcome.error is not None:
            POLL_ERRORS.labels(outcome.error.kind).inc()
    return telemetry_ingest([*outcomes, *refused], scheduled=anchor)
