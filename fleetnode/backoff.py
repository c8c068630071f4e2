"""Exponential backoff with full jitter: wait a uniform random time in [0, min(cap, base·2ⁿ)]
before attempt n+1, so a thousand nodes cut off by the same outage don't come back in step."""

from __future__ import annotations

import random


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

    def reset(self) -> None:
        self.attempt = 0
