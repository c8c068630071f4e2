"""Refresh-before-expiry for busy miners: the proxy's tokens renewed ahead of time, so a
browser never waits for a renewal on a rig people are looking at.

The proxy marks a miner busy on every forwarded request; the periodic task (``proxy.tasks``)
renews the token of every miner busy in the last ``BUSY_FOR`` seconds whose token is due
within ``AHEAD`` seconds — by refresh, which revokes nobody's token.
"""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError

from fleet.models import Miner
from fleet.netguard import AddressRefused
from miners.errors import MinerError
from proxy import store, upstream
from proxy.access import rig_of
from proxy.rigs import Rig
from proxy.tokens import token_due, token_for

TOKEN_DRIVERS = ("protoos",)
"""Drivers whose proxied API uses tokens (a stock Antminer answers digest challenges)."""
BUSY_KEY = "rw:proxy:busy"
BUSY_FOR = 300.0
AHEAD = 90.0


MARK_EVERY = 10.0
"""A miner is marked busy in the shared store at most this often per process."""
_marked: dict[int, float] = {}
_pending: set[asyncio.Task[None]] = set()


def mark_busy(miner_id: int) -> None:
    """Note (in the background, at most every ``MARK_EVERY`` s) that ``miner_id`` is in use:
    only a hint for the refresh task, so it stays off the request's path."""
    now = time.monotonic()
    if now - _marked.get(miner_id, -MARK_EVERY) < MARK_EVERY:
        return
    _marked[miner_id] = now
    if len(_marked) > 10_000:
        _marked.clear()
    task = asyncio.ensure_future(_touch(miner_id))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _touch(miner_id: int) -> None:
    try:
        await store.store().touch(BUSY_KEY, str(miner_id), time.time())
    except (RedisError, OSError):
        _marked.pop(miner_id, None)  # try again on the next request


async def marks_written() -> None:
    """Wait for the busy marks still being written (tests, shutdown)."""
    if _pending:
        await asyncio.gather(*_pending, return_exceptions=True)


async def _busy_ids() -> list[int]:
    members = await store.store().members_since(BUSY_KEY, time.time() - BUSY_FOR)
    return [int(m) for m in members if m.isdigit()]


async def _renew_due(rigs: list[Rig]) -> int:
    gate = asyncio.Semaphore(32)

    async def one(rig: Rig) -> bool:
        async with gate:
            if not await token_due(rig, AHEAD):
                return False
            try:
                await token_for(rig, renew=True)
            except MinerError:
                return False  # the next proxied request shows the failure to a person
            return True

    return sum(await asyncio.gather(*(one(rig) for rig in rigs)))


def tokens_refresh_due() -> int:
    """Renew the due tokens of busy miners; how many were renewed."""

    async def busy() -> list[int]:
        try:
            return await _busy_ids()
        finally:
            await store.close()

    ids = asyncio.run(busy())
    rigs: list[Rig] = []
    miners = Miner.unscoped.filter(
        pk__in=ids, node__isnull=True, driver__in=TOKEN_DRIVERS, secret__isnull=False
    )
    for miner in miners:
        try:
            rigs.append(rig_of(miner))
        except AddressRefused:
            continue

    async def renew() -> int:
        try:
            return await _renew_due(rigs)
        finally:
            await upstream.close()
            await store.close()

    return asyncio.run(renew()) if rigs else 0
