"""Every driver call is bounded: a rig that stops answering must cost a bounded slot in the
poller, never a hung task. One helper so the timeout maps to our `Timeout` the same way
everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from miners.errors import Timeout

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Seconds a whole device call (login, retry and all) may take unless the caller says."""

IDENTIFY_TIMEOUT = 3.0
"""Seconds one driver may spend deciding whether a host:port is its kind of miner."""


async def within(seconds: float, what: str, aw: Awaitable[T]) -> T:
    """Await `aw`, raising `Timeout` (with `what` in the message) once `seconds` pass."""
    try:
        async with asyncio.timeout(seconds):
            return await aw
    except TimeoutError as exc:
        raise Timeout(f"{what}: no answer within {seconds:g} s") from exc
