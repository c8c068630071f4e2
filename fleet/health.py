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


# A miner whose figures count in the fleet totals (hashrate, power, efficiency, hottest chip)
# and show as current: its health comes from a poll that answered, or from the hysteresis
# after fewer than ``OFFLINE_AFTER`` missed polls (``ok``, ``degraded``, ``default_password``),
# it has a reading (``latest.updated_at``), and its last ``OFFLINE_AFTER`` polls did not all
# fail (a rig whose polls are refused with DEFAULT_PASSWORD_ACTIVE keeps that health, but its
# figures are from before). ``offline``, ``auth_needed`` and ``unknown`` (not polled yet, or
# released by its fleet node) never report: their last figures are stale.
REPORTING = frozenset({OK, DEGRADED, DEFAULT_PASSWORD})


def is_reporting(health: str, failures: int, has_reading: bool) -> bool:
    """The predicate of ``REPORTING`` for one miner (``selectors.reporting_q`` is the query)."""
    return health in REPORTING and has_reading and failures < OFFLINE_AFTER
