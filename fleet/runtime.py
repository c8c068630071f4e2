"""One long-lived event loop per process for talking to miners from synchronous code.

Drivers keep per-process state that must outlive a single request or task — above all the
miner token cache (a ProtoOS rig allows one valid token: logging in on every poll would
revoke everyone else's) and the keep-alive pool. Both are bound to an event loop, so the
process keeps one loop on a daemon thread and synchronous callers (services, Celery tasks)
submit coroutines to it. A forked child (Celery prefork) starts its own on first use.

The loop is uvloop's (bench.sim measured a quarter less CPU per RPC poll than asyncio's). The
keep-alive pool holds at most two connections per rig: a FULL status' gathered reads share
them instead of opening four TLS sessions on first contact.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvloop

from miners import Registry, default_drivers
from miners.http import HttpClient

T = TypeVar("T")
log = logging.getLogger(__name__)
LIMIT_PER_HOST = 2


def _quiet_closed_tls(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """uvloop reports a TLS connection that a timeout (or the rig) closed while a record was
    still being written as a "fatal error" with a traceback: nothing is lost (the poll already
    failed or finished), so that one goes to debug; everything else to asyncio's handler."""
    exc = context.get("exception")
    if isinstance(exc, RuntimeError) and "handler is closed" in str(exc):
        log.debug("TLS connection already closed: %s", exc)
        return
    loop.default_exception_handler(context)


class _Runtime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = -1
        self.loop: asyncio.AbstractEventLoop | None = None
        self.registry: Registry | None = None
        self.http: HttpClient | None = None
        atexit.register(self.shutdown)

    def shutdown(self) -> None:
        """Close the keep-alive pool and stop the loop (at exit: no "unclosed session")."""
        loop, http = self.loop, self.http
        if loop is None or http is None or self.pid != os.getpid() or not loop.is_running():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(http.close(), loop).result(2)
        loop.call_soon_threadsafe(loop.stop)

    def _start(self) -> tuple[asyncio.AbstractEventLoop, Registry]:
        with self.lock:
            if self.loop is None or self.registry is None or self.pid != os.getpid():
                loop = uvloop.new_event_loop()
                loop.set_exception_handler(_quiet_closed_tls)
                threading.Thread(target=loop.run_forever, name="miners", daemon=True).start()
                # pyasic-rs is not loaded in server processes (it has aborted interpreters at
                # exit); miners only it would recognise can't be managed from the server yet.
                self.http = HttpClient(limit=0, limit_per_host=LIMIT_PER_HOST)
                self.registry = Registry(default_drivers(include_pyasic=False, http=self.http))
                self.loop, self.pid = loop, os.getpid()
            return self.loop, self.registry

    def run(self, work: Callable[[Registry], Awaitable[T]], timeout: float) -> T:
        loop, registry = self._start()

        async def bounded() -> T:
            return await asyncio.wait_for(work(registry), timeout)

        return asyncio.run_coroutine_threadsafe(bounded(), loop).result(timeout + 5)


_runtime = _Runtime()


def run(work: Callable[[Registry], Awaitable[T]], *, timeout: float) -> T:
    """Run ``work(registry)`` on the process's miner loop and wait for its result."""
    return _runtime.run(work, timeout)
