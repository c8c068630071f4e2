"""Database work off the event loop on a few threads of its own, without a health check per call.

``sync_to_async``'s default runs every caller's ORM work in ONE shared thread, so under load a
hot path (the miner proxy, the nodes' control streams) queues behind the rest of the process.
Channels' ``database_sync_to_async`` also runs ``close_old_connections`` around every call,
and with ``CONN_HEALTH_CHECKS`` that is a ``SELECT 1`` round trip before each call's first
query. Here each thread keeps its own persistent connection and checks it as Django does between
requests (age, health) at most every ``CHECK_EVERY`` seconds; a call that hits a broken
connection fails (``DatabaseError``) and the connection is replaced for the next one.
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

P = ParamSpec("P")
R = TypeVar("R")

CHECK_EVERY = 5.0
_checked_at = threading.local()


def _checked(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    now = time.monotonic()
    if now - getattr(_checked_at, "at", -CHECK_EVERY) >= CHECK_EVERY:
        close_old_connections()  # past CONN_MAX_AGE, or found broken by a health check
        _checked_at.at = now
    try:
        return func(*args, **kwargs)
    except DatabaseError:
        close_old_connections()
        connection.close()  # the next call reconnects
        raise


class DbThreads:
    """``threads()`` database threads named ``prefix``; with ``sqlite_shared`` an SQLite
    database (the embedded default, which serialises writers anyway) uses Django's one shared
    thread instead."""

    def __init__(self, prefix: str, threads: Callable[[], int], *, sqlite_shared: bool) -> None:
        self.prefix = prefix
        self.threads = threads
        self.sqlite_shared = sqlite_shared
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor | None:
        if self.sqlite_shared and connection.vendor == "sqlite":
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max(1, self.threads()), thread_name_prefix=self.prefix
                )
            return self._pool

    async def run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``func(*args, **kwargs)`` on these threads."""
        call = functools.partial(_checked, func, *args, **kwargs)
        executor = self._executor()
        if executor is None:
            return await sync_to_async(call)()
        return await sync_to_async(call, thread_sensitive=False, executor=executor)()

    def shutdown(self) -> None:
        """Close every thread's connection and stop the pool (tests, process shutdown)."""
        with self._lock:
            pool, self._pool = self._pool, None
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
