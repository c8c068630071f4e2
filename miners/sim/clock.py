"""Where the simulators get the time: the wall clock when serving, a hand-driven one in tests.

Every reading of "now" and every "do this at t" in miners.sim goes through a `Clock`, so a
test can jump over a reboot or an hour of hashing instead of sleeping through it. Transport
delays (the `slow` fault, cgminer's read timeouts) stay on the event loop: they are I/O timing
that clients measure with their own clocks, not simulated time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as the miners' firmware would report it."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once `now()` reaches `when` (needs a running event loop)."""
        ...


class SystemClock:
    """Wall time; timers on the running event loop."""

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        delay = max(0.0, when - time.time())
        return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(order=True)
class _ManualTimer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Stands still until `advance()`, which runs the timers that fall due, in order and each
    at its own instant, so a reboot finishing mid-advance boots at the right time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._timers: list[_ManualTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(when, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        target = self._now + seconds
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._now = max(self._now, timer.when)
                timer.callback()
        self._now = target
