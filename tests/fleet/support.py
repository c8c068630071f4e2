"""Fleet rows for page tests: miners as the poller leaves them, and a day of their history."""

from __future__ import annotations

import datetime as dt
import math

from django.utils import timezone

from fleet.models import Miner, MinerHealth, MinerLatest, Sample
from fleet.services import retention
from tests.conftest import OrgWorld


def make_miners(org: OrgWorld, count: int) -> list[Miner]:
    """Test data without rigs behind it: every tenth offline, S21s and S19s, two firmwares."""
    now = timezone.now()
    miners = Miner.unscoped.bulk_create(
        Miner(
            org=org.org,
            site=org.sites[i % 2],
            identifier=f"serial:bulk-{org.org.slug}-{i}",
            name=f"rig-{i:05d}",
            make="Bitmain",
            model="S21" if i % 3 else "S19",
            firmware="fw-2" if i % 2 else "fw-1",
            host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            port=80,
            driver="antminer",
            health=MinerHealth.OFFLINE if i % 10 == 0 else MinerHealth.OK,
        )
        for i in range(count)
    )
    MinerLatest.objects.bulk_create(
        MinerLatest(
            miner=m,
            state="mining",
            hashrate_ths=100.0 + i,
            power_w=3000.0 + 5 * i,
            efficiency_jth=(3000.0 + 5 * i) / (100.0 + i),
            max_temp_c=60.0 + i % 15,
            updated_at=now,
        )
        for i, m in enumerate(miners)
    )
    return miners


def make_history(miners: list[Miner], *, hours: int = 24, every: int = 300) -> None:
    """A sample every ``every`` seconds over ``hours`` (a slow daily wave), rolled up."""
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(
            miner=miner,
            ts=now - dt.timedelta(seconds=k * every),
            hashrate_ths=100 + 8 * math.sin(k / 20 + i),
            power_w=3200 + 150 * math.cos(k / 9 + i),
            max_temp_c=64 + 4 * math.cos(k / 15 + i),
        )
        for i, miner in enumerate(miners)
        for k in range(1, hours * 3600 // every)
    )
    retention.rollup(now=now, lookback=dt.timedelta(hours=hours + 1))
