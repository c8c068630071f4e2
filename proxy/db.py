"""The proxy's database work off the event loop, in a small pool of its own
(``fleet.dbthreads``): ``PROXY_DB_THREADS`` threads, each with its own persistent connection
checked every few seconds rather than per hop. The proxy's hops are independent, short and
hold no transaction across calls. SQLite (the embedded default) keeps the single thread: it
serialises writers anyway. A database error is the caller's 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import DatabaseError

from fleet.dbthreads import DbThreads
from proxy.access import Refusal
from proxy.limits import DB_THREADS, limit

P = ParamSpec("P")
R = TypeVar("R")

_threads = DbThreads("proxy-db", lambda: int(limit("DB_THREADS", DB_THREADS)), sqlite_shared=True)


async def run(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``func(*args, **kwargs)`` on the proxy's database threads."""
    try:
        return await _threads.run(func, *args, **kwargs)
    except DatabaseError as exc:
        raise Refusal(503, "the database is unavailable: try again") from exc


def shutdown() -> None:
    """Close every pool thread's connection and stop the pool (tests, process shutdown)."""
    _threads.shutdown()
