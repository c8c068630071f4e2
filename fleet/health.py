"""A miner's health as the fleet shows it, from one poll and the history before it. Pure.

Hysteresis: a rig that misses a poll keeps its health; only ``OFFLINE_AFTER`` misses in a row
make it offline (a busy rig or a lost packet is not an outage). A refused login or the factory
password shows at once: nothing will fix itself there.
"""

from __future__ import annotations

from miners import AuthFailed, DefaultPasswordActive, Health, MinerError, MinerStatus

OFFLINE_AFTER = 3

OK = "ok"
DEGRADED = "degraded"
OFFLINE = "offline"
AUTH_NEEDED = "auth_needed"
DEFAULT_PASSWORD = "default_password"
UNKNOWN = "unknown"


def from_status(status: MinerStatus) -> str:
    if status.default_password_active:
        return DEFAULT_PASSWORD
    if status.health in (Health.OK, Health.IDLE):
        return OK
    return DEGRADED


def next_health(
    previous: str, failures: int, status: MinerStatus | None, error: MinerError | None
) -> str:
    """``failures`` counts consecutive failed polls *including* this one when it failed."""
    if status is not None:
        return from_status(status)
    if isinstance(error, DefaultPasswordActive):
        return DEFAULT_PASSWORD
    if isinstance(error, AuthFailed):
        return AUTH_NEEDED
    if failures >= OFFLINE_AFTER:
        return OFFLINE
    return previous if previous != UNKNOWN else UNKNOWN
