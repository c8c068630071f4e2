"""Reads of discovered devices shaped for one caller."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from discovery.models import DiscoveredDevice
from fleet.models import Miner


def with_visible_miner(
    devices: QuerySet[DiscoveredDevice], user: Any
) -> QuerySet[DiscoveredDevice]:
    """``visible_miner_id`` on each device: its miner's id if ``user`` may read that miner,
    else null. A device found at one site can be the miner of another (one identity per org),
    and the caller may see the device's site only. A subquery in the same query: no query per
    row."""
    readable = Miner.objects.restrict(user, "miner:read").filter(pk=OuterRef("miner_id"))
    return devices.annotate(visible_miner_id=Subquery(readable.values("pk")[:1]))
