"""Exponential backoff with full jitter: wait a uniform random time in [0, min(cap, base·2ⁿ)]
before attempt n+1, so a thousand nodes cut off by the same outage don't come back in step."""

from __future__ import annotations

import random

REFUSED_CAP_S = 3.0


class Backoff:
    def __init__(self, *, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self.rng = rng or random.SystemRandom()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return float(min(self.cap, self.base * 2.0 ** min(self.attempt, 32)))

    def next(self) -> float:
        delay = self.rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def next_refused(self) -> float:
        """After a refused connect: nothing listens there (the server is restarting), which
        costs it nothing, so the wait stays under ``REFUSED_CAP_S`` and a restart is rejoined
        within seconds of the server listening again; the attempt still counts, so any other
        failure after it backs off as far as before."""
        delay = self.rng.uniform(0, min(self.ceiling(), REFUSED_CAP_S))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def refused(exc: BaseException) -> bool:
    """A TCP connect the other side refused (aiohttp wraps it in ``ClientConnectorError``)."""
    inner = getattr(exc, "os_error", exc)
    return isinstance(inner, ConnectionRefusedError)
