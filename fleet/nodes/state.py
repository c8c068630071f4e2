"""Online / stale / offline, from the last heartbeat and whether a stream is attached; revoked
and pending (awaiting confirmation) from the node's status, whatever its last heartbeat."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from fleetnode.protocol import HEARTBEAT_INTERVAL_S

ONLINE_WITHIN = dt.timedelta(seconds=3 * HEARTBEAT_INTERVAL_S)
STALE_WITHIN = dt.timedelta(minutes=5)
STATES = ("online", "stale", "offline", "pending", "revoked")
# an unconfirmed registration past its 24 h is gone for every reader (the housekeeping task
# deletes it later)
LIVE_NODES = Q(status__in=["confirmed", "revoked"]) | Q(expires_at__gt=Now())


def connection_state(
    connected: bool,
    last_seen_at: dt.datetime | None,
    now: dt.datetime | None = None,
    *,
    status: str = "confirmed",
) -> str:
    """``revoked``: the node is revoked (it can't come back); ``pending``: a registration
    awaiting the operator's confirmation; for a confirmed node ``online``: a stream and a
    heartbeat within three intervals; ``stale``: heard from in the last five minutes (or a
    silent stream); ``offline``: otherwise."""
    if status == "revoked":
        return "revoked"
    if status == "awaiting_confirmation":
        return "pending"
    if last_seen_at is None:
        return "offline"
    age = (now or timezone.now()) - last_seen_at
    if connected and age <= ONLINE_WITHIN:
        return "online"
    if age <= STALE_WITHIN:
        return "stale"
    return "offline"
