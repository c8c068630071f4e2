"""Fleet tests: a simulated fleet served from a background thread, so synchronous Django tests
(the API, services) can dial real miners on loopback while they run."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from miners.sim import FleetSpec, SimFleet
from tests.miners.conftest import PORT_OFFSET, _base

PASSWORD = "rig-pass-42"


class ThreadedFleet:
    """A ``SimFleet`` on its own event loop in a daemon thread."""

    def __init__(self, **spec: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for _attempt in range(8):
            self.fleet = SimFleet(FleetSpec(base=_base(), **spec))
            try:
                self.call(self.fleet.start())
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return
        raise RuntimeError("no free loopback block for a simulated fleet")

    def call(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def fault(self, host: str, kind: str | None = None, **params: Any) -> None:
        """Set a fault (or clear ``kind``/all of them with ``clear=True``) on the loop thread."""

        async def apply() -> None:
            if kind is None or params.pop("clear", False):
                self.fleet.faults.clear(host, kind)
            else:
                self.fleet.faults.set(host, kind, **params)

        self.call(apply())

    @property
    def inventory(self) -> list[dict[str, Any]]:
        return self.fleet.inventory

    def stop(self) -> None:
        self.call(self.fleet.stop())

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def rigs() -> Iterator[ThreadedFleet]:
    """Two ProtoOS rigs and one Antminer with PASSWORD, shared by a module's tests."""
    fleet = ThreadedFleet(
        proto=2,
        antminer=1,
        password=PASSWORD,
        port_offset=PORT_OFFSET,
        stats_delay=0.0,
        reboot_downtime=0.3,
        seed=3,
    )
    yield fleet
    fleet.stop()


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    """The simulators live on 127.x: allow loopback as an operator would list a range."""
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
