"""Which miners are due, and one shard's poll from loading targets to ingest."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet import dial, runtime
from fleet.crypto import SecretError
from fleet.models import Miner
from fleet.netguard import AddressRefused
from fleet.observability import POLL_ERRORS, POLL_SECONDS, SHARD_SECONDS
from fleet.poller import PollOutcome, PollTarget, poll_targets
from fleet.services.credentials import credentials_for
from fleet.services.telemetry import IngestSummary, telemetry_ingest
from miners import Detail, MinerError, Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollSettings:
    interval: dt.timedelta
    shard_size: int
    concurrency: int
    deadline: float


def poll_settings() -> PollSettings:
    return PollSettings(
        interval=dt.timedelta(seconds=settings.FLEET_POLL_INTERVAL),
        shard_size=settings.FLEET_POLL_SHARD_SIZE,
        concurrency=settings.FLEET_POLL_CONCURRENCY,
        deadline=settings.FLEET_POLL_DEADLINE,
    )


@transaction.atomic
def due_shards(*, now: dt.datetime | None = None, limit: int = 100_000) -> list[list[int]]:
    """Claim the miners due now (so an overlapping tick doesn't take them again) and split them
    into shards. Fleet-node miners are polled by their node, not here."""
    config = poll_settings()
    now = now or timezone.now()
    due = list(
        Miner.unscoped.select_for_update(skip_locked=True)
        .filter(next_poll_at__lte=now, managed_by="cloud")
        .order_by("next_poll_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    if due:
        # the claim lasts one deadline past the interval; ingest sets the real next time
        claim = now + config.interval + dt.timedelta(seconds=config.deadline)
        Miner.unscoped.filter(pk__in=due).update(next_poll_at=claim)
    size = max(1, config.shard_size)
    return [due[i : i + size] for i in range(0, len(due), size)]


class _Refused(MinerError):
    kind = "refused"


def _detail(miner: Miner, full_before: dt.datetime) -> Detail:
    """Boards, fans and PSUs (a FULL status) every ``FLEET_FULL_STATUS_INTERVAL``; the cheap
    summary in between."""
    latest = getattr(miner, "latest", None)
    full_at = latest.full_at if latest is not None else None
    return Detail.FULL if full_at is None or full_at < full_before else Detail.SUMMARY


def _targets(miner_ids: list[int]) -> tuple[list[PollTarget], list[PollOutcome]]:
    targets, refused = [], []
    now = timezone.now().timestamp()
    full_before = timezone.now() - dt.timedelta(seconds=settings.FLEET_FULL_STATUS_INTERVAL)
    miners = Miner.unscoped.filter(pk__in=miner_ids, managed_by="cloud").select_related("latest")
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


def poll_shard(miner_ids: list[int]) -> IngestSummary:
    """Poll these miners concurrently (one deadline each) and ingest what came back."""
    with SHARD_SECONDS.time():
        return _poll_shard(miner_ids)


def _poll_shard(miner_ids: list[int]) -> IngestSummary:
    config = poll_settings()
    targets, refused = _targets(miner_ids)

    async def work(registry: Registry) -> list[PollOutcome]:
        return await poll_targets(
            registry, targets, concurrency=config.concurrency, deadline=config.deadline
        )

    outcomes = runtime.run(
        work, timeout=config.deadline * (1 + len(targets) // max(1, config.concurrency)) + 10
    )
    for outcome in outcomes:
        POLL_SECONDS.observe(outcome.seconds)
    for outcome in [*outcomes, *refused]:
        if outcome.error is not None:
            POLL_ERRORS.labels(outcome.error.kind).inc()
    return telemetry_ingest([*outcomes, *refused], interval=config.interval)
