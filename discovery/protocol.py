"""Discovery's ``/ws/live/`` messages (server → browser), published to the run's site group:

- ``discovery``: ``{"type": "discovery", "run": RunProgress, "devices": [DeviceRow, …]}`` —
  progress of a run and the devices this update found or paired (empty when only counters
  moved); a device already shown is updated in place (its pairing outcome).
"""

from __future__ import annotations

from typing import TypedDict


class RunProgress(TypedDict):
    id: int
    status: str
    outcome: str
    probed: int
    total: int
    found: int
    new: int
    updated: int
    rejected: dict[str, int]
    error: str


class DeviceRow(TypedDict):
    id: int
    identifier: str
    host: str
    port: int
    driver: str
    make: str
    model: str
    firmware: str
    serial: str
    mac: str
    node: int | None
    miner: int | None  # null when paired to a miner the run's site can't read (see ``paired``)
    paired: bool  # paired to a miner, shown or not: never offered for pairing again
    pair_outcome: str  # "" until paired: paired / default_password / auth_needed / failed
    pair_error: str


class DiscoveryMessage(TypedDict):
    type: str
    run: RunProgress
    devices: list[DeviceRow]
