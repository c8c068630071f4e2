"""The proxy's limits, each overridable from settings (``PROXY_*``)."""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict

from django.conf import settings


def limit(name: str, default: float) -> float:
    return float(getattr(settings, f"PROXY_{name}", default))


CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 30.0
REQUEST_MAX_BYTES = 1 << 20
RESPONSE_MAX_BYTES = 64 << 20
PER_MINER = 2
QUEUE_WAIT = 10.0
RATE_PER_MINUTE = 600
AUTH_CACHE_SECONDS = 2.0
"""How long a read's authorization is reused (a revoke or a role change waits this long)."""
AUTH_CACHE_ENTRIES = 10_000
DB_THREADS = 4
"""Threads (and so database connections) per web process for the proxy's auth and audit."""

_gates: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, OrderedDict[int, asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def miner_gate(miner_id: int) -> asyncio.Semaphore:
    """At most ``PER_MINER`` requests in flight to one miner from this process."""
    gates = _gates.setdefault(asyncio.get_running_loop(), OrderedDict())
    gate = gates.get(miner_id)
    if gate is None:
        gate = gates[miner_id] = asyncio.Semaphore(int(limit("PER_MINER", PER_MINER)))
        while len(gates) > 10_000:
            _oldest, idle = next(iter(gates.items()))
            if idle.locked():
                break
            gates.popitem(last=False)
    gates.move_to_end(miner_id)
    return gate
