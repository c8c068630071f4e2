"""The proxy's database work off the event loop, in a small pool of its own.

``sync_to_async``'s default runs every caller's ORM work in ONE shared thread, so under load
the proxy's requests queue behind each other (and behind the rest of the process). The proxy's
hops are independent, short and hold no transaction across calls, so they run on
``PROXY_DB_THREADS`` threads instead, each with its own persistent connection (checked as
Django checks it between requests). SQLite (the embedded default) keeps the single thread:
it serialises writers anyway.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connection

from proxy.access import Refusal
from proxy.limits import DB_THREADS, limit

P = ParamSpec("P")
R = TypeVar("R")

CHECK_EVERY = 5.0
"""How often a pool thread checks its connection as Django does between requests (age,
health): every hop would cost a ``SELECT 1`` round trip. A connection that breaks in between
fails one hop (503) and is replaced."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_checked_at = threading.local()


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    if connection.vendor == "sqlite":
        return None
    with _pool_lock:
        if _pool is None:
            threads = max(1, int(limit("DB_THREADS", DB_THREADS)))
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="proxy-db")
        return _pool


def _checked(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    now = time.monotonic()
    if now - getattr(_checked_at, "at", -CHECK_EVERY) >= CHECK_EVERY:
        close_old_connections()  # past CONN_MAX_AGE, or found broken by a health check
        _checked_at.at = now
    try:
        return func(*args, **kwargs)
    except DatabaseError as exc:
        close_old_connections()
        connection.close()  # the next hop reconnects
        raise Refusal(503, "the database is unavailable: try again") from exc


async def run(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``func(*args, **kwargs)`` on the proxy's database threads."""
    call = functools.partial(_checked, func, *args, **kwargs)
    executor = _executor()
    if executor is None:
        return await sync_to_async(call)()
    return await sync_to_async(call, thread_sensitive=False, executor=executor)()


def shutdown() -> None:
    """Close every pool thread's connection and stop the pool (tests, process shutdown)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    threads = pool._max_workers
    barrier = threading.Barrier(threads, timeout=10)

    def close() -> None:
        barrier.wait()  # one job per thread: every thread closes its own connection
        connection.close()

    for future in [pool.submit(close) for _ in range(threads)]:
        future.result()
    pool.shutdown(wait=True)
