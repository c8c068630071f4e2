"""Miner rows for the scheduling tests: no rig behind them, due at a chosen time."""

from __future__ import annotations

import datetime as dt

from fleet.models import Miner
from tests.conftest import OrgWorld


def due_miner(world: OrgWorld, n: int, due: dt.datetime) -> Miner:
    return Miner.unscoped.create(
        org=world.org,
        site=world.sites[0],
        identifier=f"auto:due-{world.org.pk}-{n}",
        name=f"rig-{n}",
        host=f"127.0.0.{n + 10}",
        port=443,
        driver="protoos",
        next_poll_at=due,
    )
