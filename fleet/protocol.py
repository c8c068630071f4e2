"""Message shapes of ``/ws/live/`` (server → browser). The browser sends nothing but pings.

Every message is one JSON object with ``type``:

- ``telemetry``: ``{"type": "telemetry", "miners": [MinerDelta, …]}`` — coalesced per second.
- ``health``: ``{"type": "health", "miner": id, "name", "from", "to"}`` — a transition.
- ``job``: ``{"type": "job", "job": {id, kind, status, total, done, failed}}`` — progress.
- ``node``: ``{"type": "node", "node": {id, status, state, connected, last_seen_at,
  agent_version}}`` — a fleet node's state changed (``fleet.nodes.live``), to its org's group.
- ``dropped``: ``{"type": "dropped", "count": n}`` — this socket fell behind and n updates were
  dropped (the page should refetch); never silent.
"""

from __future__ import annotations

from typing import TypedDict


class MinerDelta(TypedDict):
    id: int
    site: int
    health: str
    state: str
    hashrate_ths: float | None
    power_w: float | None
    max_temp_c: float | None
    efficiency_jth: float | None
    updated_at: str | None
    stale: bool  # not reporting (fleet.health.REPORTING): the figures are its last, not current


class TelemetryMessage(TypedDict):
    type: str
    miners: list[MinerDelta]


class HealthMessage(TypedDict):
    type: str
    miner: int
    name: str
    to: str


class JobProgress(TypedDict):
    id: int
    kind: str
    status: str
    total: int
    done: int
    failed: int


class JobMessage(TypedDict):
    type: str
    job: JobProgress


def org_group(org_id: int) -> str:
    return f"live.org.{org_id}"


def site_group(site_id: int) -> str:
    return f"live.site.{site_id}"


# Close codes (contracts.md "WebSockets for browsers").
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
