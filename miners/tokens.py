"""Bearer tokens shared per rig, with single-flight login.

ProtoOS may allow only one valid access token at a time: every extra login revokes the
token everybody else holds. So all devices, polls and actions aimed at one rig share one
token (keyed by host:port and credential version), concurrent callers that find no token
wait for *one* login instead of racing, and a 401 drops only the token that failed (a
newer one a neighbour just obtained survives).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class TokenCache:
    """In-process LRU of tokens plus the in-flight logins. One per driver instance, which is
    one per process in practice."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[str]] = {}
        self._max = max_entries

    def peek(self, key: str) -> str | None:
        return self._tokens.get(key)

    async def obtain(self, key: str, login: Callable[[], Awaitable[str]]) -> str:
        """The cached token for `key`, or the result of one shared `login()`. The login runs
        as its own task so a caller hitting its deadline doesn't cancel it for the others."""
        token = self._tokens.get(key)
        if token is not None:
            self._tokens.move_to_end(key)
            return token
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(login())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        return await asyncio.shield(task)

    def _settle(self, key: str, task: asyncio.Task[str]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return  # exception is marked retrieved; waiters re-raise it themselves
        self._tokens[key] = task.result()
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._max:
            self._tokens.popitem(last=False)

    def invalidate(self, key: str, token: str | None = None) -> None:
        """Forget `key`'s token — only if it is still `token` when one is given."""
        if token is None or self._tokens.get(key) == token:
            self._tokens.pop(key, None)
