"""The server's calls to miners from synchronous code (services, management commands).

Calls run on the process's miner loop (``fleet.runtime``), which keeps the drivers' token
caches and keep-alive pool between calls. Every address passes ``netguard`` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings

from fleet import runtime
from fleet.netguard import check_dialable
from miners import Credentials, Detail, DeviceInfo, MinerStatus, Registry

T = TypeVar("T")
IDENTIFY_TIMEOUT = 5.0
CALL_TIMEOUT = 15.0


def check_address(host: str) -> str:
    """``host`` normalised, or ``AddressRefused`` (the one rule for every dial)."""
    return str(check_dialable(host, settings.DISCOVERY_ALLOWED_NETWORKS))


def _run(work: Callable[[Registry], Awaitable[T]]) -> T:
    return runtime.run(work, timeout=CALL_TIMEOUT * 2)


def identify(
    host: str, port: int | None, *, driver: str | None = None, credentials: Credentials | None
) -> DeviceInfo | None:
    """What answers at host[:port] like a miner (None when nothing does)."""
    host = check_address(host)

    async def work(registry: Registry) -> DeviceInfo | None:
        if driver:
            ports = [port] if port else list(registry.get(driver).discovery_ports)
            for candidate in ports:
                info = await registry.get(driver).identify(
                    host, candidate, timeout=IDENTIFY_TIMEOUT, credentials=credentials
                )
                if info is not None:
                    return info
            return None
        return await registry.identify_any(
            host, [port] if port else None, timeout=IDENTIFY_TIMEOUT, credentials=credentials
        )

    return _run(work)


def identify_many(
    targets: Sequence[tuple[str, int, str, Credentials | None]], *, concurrency: int = 64
) -> list[DeviceInfo | None]:
    """Identify known devices at once, each ``(host, port, driver, credentials)`` on its own
    port with its own driver: a ``DeviceInfo`` per target, None where nothing answered like
    that driver. Every address is checked first (``AddressRefused`` names the first refused)."""
    checked = [(check_address(host), port, driver, creds) for host, port, driver, creds in targets]

    async def work(registry: Registry) -> list[DeviceInfo | None]:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(host: str, port: int, driver: str, creds: Credentials | None) -> Any:
            async with gate:
                return await registry.get(driver).identify(
                    host, port, timeout=IDENTIFY_TIMEOUT, credentials=creds
                )

        found = await asyncio.gather(*(one(*t) for t in checked), return_exceptions=True)
        return [info if isinstance(info, DeviceInfo) else None for info in found]

    rounds = 1 + len(checked) // max(1, concurrency)
    return runtime.run(work, timeout=IDENTIFY_TIMEOUT * rounds + 10)


def status(info: DeviceInfo, credentials: Credentials, detail: Detail = Detail.FULL) -> MinerStatus:
    """A status read with the given credentials (raises the driver's typed errors)."""
    check_address(info.host)

    async def work(registry: Registry) -> MinerStatus:
        device = registry.get(info.driver).connect(info, credentials, timeout=CALL_TIMEOUT)
        try:
            return await device.status(detail)
        finally:
            await device.close()

    return _run(work)


def capabilities(info: DeviceInfo) -> list[str]:
    """What the driver can do with this device (connecting does no I/O)."""

    async def work(registry: Registry) -> list[str]:
        device = registry.get(info.driver).connect(info, Credentials(password=""), timeout=1)
        try:
            return sorted(str(capability) for capability in device.capabilities)
        finally:
            await device.close()

    return _run(work)


def driver_names() -> list[str]:
    return _run(_names)


async def _names(registry: Registry) -> list[str]:
    return [driver.name for driver in registry.drivers]


def default_credentials(driver: str) -> Credentials | None:
    """The factory login of ``driver`` (used when none is given)."""

    async def work(registry: Registry) -> Credentials | None:
        return registry.get(driver).default_credentials

    return _run(work)


def logs(
    info: DeviceInfo, credentials: Credentials, *, lines: int, source: str | None
) -> list[str]:
    """The rig's last ``lines`` log lines (raises the driver's typed errors)."""
    check_address(info.host)

    async def work(registry: Registry) -> list[str]:
        device = registry.get(info.driver).connect(info, credentials, timeout=CALL_TIMEOUT)
        try:
            return await device.logs(lines, source)
        finally:
            await device.close()

    return _run(work)
