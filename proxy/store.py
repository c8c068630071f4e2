"""Shared state for the proxy: miner tokens, the per-rig login lock and rate counters.

Redis when ``REDIS_URL`` is set (shared by every process of the deployment); otherwise an
in-process LRU with TTL, which is all the embedded single process needs. Clients are per event
loop: redis-py's asyncio connections belong to the loop that opened them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from typing import Protocol

from django.conf import settings
from redis.asyncio import Redis

MAX_LOCAL_ENTRIES = 10_000
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def acquire(self, key: str, ttl: float) -> str | None: ...
    async def release(self, key: str, owner: str) -> None: ...
    async def hit(self, key: str, window: float) -> int: ...
    async def touch(self, key: str, member: str, now: float) -> None: ...
    async def members_since(self, key: str, since: float) -> list[str]: ...


class LocalStore:
    """LRU + TTL in this process; thread-safe so tests and sync callers can share it."""

    def __init__(self, max_entries: int = MAX_LOCAL_ENTRIES) -> None:
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._sets: dict[str, OrderedDict[str, float]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def _live(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[0]

    def _set(self, key: str, value: str, ttl: float) -> None:
        self._items[key] = (value, time.monotonic() + ttl)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    async def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._set(key, value, ttl)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    async def acquire(self, key: str, ttl: float) -> str | None:
        owner = uuid.uuid4().hex
        with self._lock:
            if self._live(key) is not None:
                return None
            self._set(key, owner, ttl)
        return owner

    async def release(self, key: str, owner: str) -> None:
        with self._lock:
            if self._live(key) == owner:
                del self._items[key]

    async def hit(self, key: str, window: float) -> int:
        with self._lock:
            count = int(self._live(key) or 0) + 1
            item = self._items.get(key)
            expires = item[1] - time.monotonic() if item else window
            self._set(key, str(count), max(expires, 0.001))
            return count

    async def touch(self, key: str, member: str, now: float) -> None:
        with self._lock:
            members = self._sets.setdefault(key, OrderedDict())
            members[member] = now
            members.move_to_end(member)
            while len(members) > self._max:
                members.popitem(last=False)

    async def members_since(self, key: str, since: float) -> list[str]:
        with self._lock:
            members = self._sets.get(key, OrderedDict())
            for stale in [m for m, at in members.items() if at < since]:
                del members[stale]
            return list(members)


class RedisStore:
    """The same operations on Redis: SET NX PX for the lock, a compare-and-delete release.
    Every key is put under ``namespace`` (``PROXY_STORE_NAMESPACE``; empty by default), so
    deployments or test runs sharing one Redis database never see each other's state."""

    def __init__(self, redis: Redis, namespace: str = "") -> None:
        self.redis = redis
        self.namespace = namespace

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(self.namespace + key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self.redis.set(self.namespace + key, value, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.namespace + key)

    async def acquire(self, key: str, ttl: float) -> str | None:
        owner = uuid.uuid4().hex
        got = await self.redis.set(self.namespace + key, owner, nx=True, px=max(1, int(ttl * 1000)))
        return owner if got else None

    async def release(self, key: str, owner: str) -> None:
        await self.redis.eval(_RELEASE, 1, self.namespace + key, owner)

    async def hit(self, key: str, window: float) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(self.namespace + key)
            pipe.pexpire(self.namespace + key, max(1, int(window * 1000)), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def touch(self, key: str, member: str, now: float) -> None:
        await self.redis.zadd(self.namespace + key, {member: now})

    async def members_since(self, key: str, since: float) -> list[str]:
        await self.redis.zremrangebyscore(self.namespace + key, "-inf", f"({since}")
        found = await self.redis.zrangebyscore(self.namespace + key, since, "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in found]


_local = LocalStore()
_redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisStore] = (
    weakref.WeakKeyDictionary()
)


def store() -> Store:
    """This deployment's store for the running loop."""
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return _local
    loop = asyncio.get_running_loop()
    namespace = str(getattr(settings, "PROXY_STORE_NAMESPACE", ""))
    found = _redis.get(loop)
    if found is None or found.namespace != namespace:
        found = RedisStore(Redis.from_url(url, socket_timeout=5), namespace)
        _redis[loop] = found
    return found


async def close() -> None:
    """Close this loop's Redis client, if it opened one."""
    found = _redis.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.redis.aclose()
