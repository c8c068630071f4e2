"""Port-per-miner mode (`--single-address`): every miner listens on one address, each on its
own ports, for hosts where only 127.0.0.1 exists (macOS, some containers).

Each miner keeps its usual name — a loopback address laid out from `base` — which the control
API, the fault injector and the rig's own reports use; only its sockets move to the shared
address. Miner number `i` (its position in the fleet) serves the real ports shifted by
`shift(i, offset)`, so every miner keeps the firmware's own spacing (web 80 + s, https 443 + s,
RPC 4028 + s; drivers that derive the RPC port from the web port still find it). Shifts run
consecutively for `GROUP` miners (443 - 80: no port of one miner can be another's), then jump
by `GROUP_STRIDE` for the next group.

Nothing here imports the rest of the simulator (spec.py, fleet.py, control.py import this).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

REAL_PORTS = (80, 443, 4028)
GROUP = 443 - 80
GROUP_STRIDE = 4400  # past a group's highest port: 4028 + GROUP - 1 - 80 < 4400
MAX_PORT = 65535


def shift(position: int, offset: int) -> int:
    """How far miner number `position` moves the real ports."""
    return offset + position % GROUP + GROUP_STRIDE * (position // GROUP)


def position(base: str, host: str) -> int:
    """A miner's number in the fleet, from its name (`base` is miner 0)."""
    return int(ipaddress.IPv4Address(host)) - int(ipaddress.IPv4Address(base))


def layout_problem(total: int, offset: int) -> str | None:
    """Why `total` miners from `offset` don't fit below port 65536 (None when they do)."""
    if total <= 0:
        return None
    highest = max(REAL_PORTS) + shift(total - 1, offset)
    if highest > MAX_PORT:
        return (
            f"{total} miners on one address need ports up to {highest} with port offset "
            f"{offset}: lower the offset or the count (at most 65535)"
        )
    return None


def entry_id(entry: dict[str, Any]) -> str:
    """The name the control API knows an inventory entry by: `id` in port-per-miner mode,
    else its address."""
    return str(entry.get("id", entry["host"]))


def published(entry: dict[str, Any], address: str) -> dict[str, Any]:
    """The inventory entry clients see: where to connect (`host`, `ports`) and the miner's
    name (`id`) for the control API."""
    return {"kind": entry["kind"], "id": entry["host"], **entry, "host": address}


class PortMap:
    """Which miner a local port belongs to (every socket of the fleet is on one address)."""

    def __init__(self) -> None:
        self._by_port: dict[int, str] = {}

    def add(self, name: str, ports: Iterable[int]) -> None:
        for port in ports:
            self._by_port[port] = name

    def key(self, sockname: Any) -> str | None:
        """The miner name for a connection's local address."""
        return self._by_port.get(int(sockname[1])) if sockname else None
