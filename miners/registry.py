"""Which driver speaks to a host: concurrent identification, best driver wins.

All drivers that could be behind a port are asked at once (a scan can't afford them one
after the other). The answer taken is the *highest-priority* confident one, not merely the
fastest: our own ProtoOS/Antminer drivers (richer, cheaper to poll) beat the pyasic-rs
adapter even when the adapter answers first; as soon as the winner is certain the others
are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from miners.antminer import AntminerDriver
from miners.base import Driver
from miners.deadline import IDENTIFY_TIMEOUT
from miners.http import HttpClient
from miners.protoos import ProtoOSDriver
from miners.types import Credentials, DeviceInfo

FIXED_PORT_DRIVERS = frozenset({"pyasic"})
"""Drivers whose library chooses the ports itself: only worth asking on the ports they claim."""


def default_drivers(*, include_pyasic: bool = True, http: HttpClient | None = None) -> list[Driver]:
    """One instance of every driver (they hold per-process caches: tokens, handles)."""
    drivers: list[Driver] = [ProtoOSDriver(http), AntminerDriver(http)]
    if include_pyasic:
        from miners.pyasic_adapter import PyasicDriver

        drivers.append(PyasicDriver())
    return drivers


EMBEDDED_VIEW_DRIVERS = frozenset(
    driver.name for driver in (ProtoOSDriver, AntminerDriver) if driver.embedded_view_available
)
"""Driver names the single-miner view can show (the adapter's miners never can)."""

NATIVE_API_PREFIXES: dict[str, str] = {"protoos": "/api/v1", "antminer": "/cgi-bin"}
"""Per driver with an HTTP API: the path prefix of that API, which the server's proxy forwards
under ``/api-proxy/miners/<id>`` (ProtoOS REST; the stock Antminer web CGIs)."""


class Registry:
    def __init__(self, drivers: Iterable[Driver]) -> None:
        self.drivers = sorted(drivers, key=lambda d: d.priority)

    def get(self, name: str) -> Driver:
        for driver in self.drivers:
            if driver.name == name:
                return driver
        raise KeyError(f"no driver named {name!r}")

    def ports(self) -> list[int]:
        """Every port some driver probes during a scan, most telling first."""
        seen: dict[int, None] = {}
        for driver in self.drivers:
            seen.update(dict.fromkeys(driver.discovery_ports))
        return list(seen)

    def candidates(self, port: int) -> list[Driver]:
        """Drivers worth asking about `port`: those that claim it, plus (for a port nobody
        claims, e.g. a shifted or forwarded one) every driver that can use any port."""
        claiming = [d for d in self.drivers if d.claims(port)]
        flexible = [d for d in self.drivers if d.name not in FIXED_PORT_DRIVERS]
        return claiming or flexible

    async def identify(
        self,
        host: str,
        port: int,
        *,
        timeout: float = IDENTIFY_TIMEOUT,
        credentials: Credentials | None = None,
    ) -> DeviceInfo | None:
        """What is on host:port (None when nothing answered like a miner)."""
        return await self.identify_any(host, [port], timeout=timeout, credentials=credentials)

    async def identify_any(
        self,
        host: str,
        ports: Sequence[int] | None = None,
        *,
        timeout: float = IDENTIFY_TIMEOUT,
        credentials: Credentials | None = None,
    ) -> DeviceInfo | None:
        """Ask every candidate driver on every port (default: all scan ports) concurrently;
        return the answer of the best-ranked driver (priority, then its port preference)."""
        pairs = [(d, p) for p in (ports or self.ports()) for d in self.candidates(p)]
        pairs.sort(key=lambda dp: (dp[0].priority, _port_rank(dp[0], dp[1])))
        tasks = [
            asyncio.ensure_future(d.identify(host, p, timeout=timeout, credentials=credentials))
            for d, p in pairs
        ]
        try:
            return await _best(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _port_rank(driver: Driver, port: int) -> int:
    try:
        return driver.discovery_ports.index(port)
    except ValueError:
        return len(driver.discovery_ports)


async def _best(ranked: Sequence[asyncio.Future[DeviceInfo | None]]) -> DeviceInfo | None:
    """The first non-None result in rank order, decided as soon as every better-ranked task
    has come back empty."""
    pending = set(ranked)
    while True:
        for task in ranked:
            if not task.done():
                break
            if not task.cancelled() and task.exception() is None and task.result() is not None:
                return task.result()
        else:
            return None
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
