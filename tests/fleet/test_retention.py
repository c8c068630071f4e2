"""Retention on any backend: the DELETE path SQLite (the embedded default) takes, and the
periodic task that rolls up and prunes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from fleet.models import Sample, SampleRollup
from fleet.services import retention
from fleet.tasks import rollup_samples
from tests.conftest import OrgWorld
from tests.fleet.support import make_miners


def test_row_pruning_deletes_exactly_what_is_past_each_horizon(
    org_a: OrgWorld, settings: Any
) -> None:
    """SQLite's path (plain tables, DELETE); the ORM runs it the same on PostgreSQL."""
    (miner,) = make_miners(org_a, 1)
    settings.FLEET_RAW_SAMPLE_HOURS = 2
    settings.FLEET_ROLLUP_5M_DAYS = 1
    settings.FLEET_ROLLUP_1H_DAYS = 3
    now = timezone.now()
    hour = dt.timedelta(hours=1)
    Sample.objects.bulk_create(Sample(miner=miner, ts=now - k * hour) for k in (0, 1, 3, 5))
    SampleRollup.objects.bulk_create(
        SampleRollup(miner=miner, resolution=resolution, ts=now - dt.timedelta(days=days))
        for resolution, days in ((300, 0.5), (300, 2), (3600, 2), (3600, 4))
    )
    assert retention._prune_rows(now) == {"raw": 2, "5m": 1, "1h": 1}
    assert Sample.objects.filter(miner=miner).count() == 2
    assert SampleRollup.objects.filter(miner=miner).count() == 2


def test_the_periodic_task_rolls_up_then_prunes(org_a: OrgWorld) -> None:
    (miner,) = make_miners(org_a, 1)
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(miner=miner, ts=now - dt.timedelta(minutes=m), power_w=3000.0) for m in range(60)
    )
    result = rollup_samples.apply().get()
    assert result["rollups"] > 0 and {"raw", "5m", "1h"} <= set(result)
    assert SampleRollup.objects.filter(miner=miner, resolution=300).exists()
