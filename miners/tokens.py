"""Bearer tokens shared per rig: single-flight renewal, refresh before login.

ProtoOS may allow only one valid access token at a time: every extra *login* revokes the
token everybody else holds, while `POST /auth/refresh` renews a token without revoking
anyone's. So all devices, polls and actions aimed at one rig share one token (keyed by
host:port and credential version); a token about to expire is refreshed, not replaced by a
new login; after a 401 the refresh token is tried first and a login is the fallback;
concurrent callers that need a new token wait for *one* renewal instead of racing; and a 401
renews only if the token that failed is still the cached one (a newer token a neighbour just
obtained survives).

Lifetimes come from the token when it is a JWT carrying ``exp`` (``exp - iat`` when it also
has ``iat``, so a rig whose clock is off doesn't matter), else `DEFAULT_ACCESS_TTL`: short
enough that an unknown lifetime costs one cheap refresh now and then, not a failed call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from miners.errors import MinerError, Unreachable

DEFAULT_ACCESS_TTL = 300.0
"""Seconds an access token is trusted when it doesn't say how long it lives."""

REFRESH_MARGIN = 60.0
"""Renew this long before expiry (at most a tenth of the lifetime for short-lived tokens)."""

MAX_TTL = 400 * 86400.0
"""Longer claimed lifetimes are taken as garbage (a rig clock years off, a bogus claim)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a login or refresh returned. ``refresh`` None after a refresh means "keep using
    the refresh token you had" (ProtoOS refresh replies carry only an access token)."""

    access: str
    refresh: str | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """A cached token. Times are on the cache's clock (monotonic by default)."""

    access: str
    refresh: str | None
    renew_at: float
    """When to renew proactively (shortly before the access token expires)."""
    refresh_expires_at: float | None
    """When the refresh token stops working, if it says; None = unknown, just try it."""
    via: str
    """"login" or "refresh": how this access token was obtained."""


Login = Callable[[], Awaitable[str | Grant]]
Refresh = Callable[[str], Awaitable[str | Grant]]


def _b64json(part: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error):
        return None


def jwt_lifetime(token: str, wall_now: float | None = None) -> float | None:
    """Seconds `token` lives from now per its JWT claims (``exp - iat``, else ``exp`` minus
    the wall clock), or None when it is not a JWT with a usable ``exp``. Signatures are not
    checked: the rig is the judge of its tokens, this only schedules renewals."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    claims = _b64json(parts[1])
    if not isinstance(claims, dict):
        return None
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        lifetime = float(exp - iat)
    else:
        lifetime = float(exp) - (time.time() if wall_now is None else wall_now)
    return lifetime if 0 < lifetime <= MAX_TTL else None


class TokenCache:
    """In-process LRU of tokens plus the in-flight renewals. One per driver instance, which
    is one per process in practice. `clock` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        clock: Callable[[], float] = time.monotonic,
        default_ttl: float = DEFAULT_ACCESS_TTL,
    ) -> None:
        self._tokens: OrderedDict[str, Token] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Token]] = {}
        self._max = max_entries
        self._clock = clock
        self._default_ttl = default_ttl

    def peek(self, key: str) -> str | None:
        """The cached access token for `key`, if any (fresh or not)."""
        token = self._tokens.get(key)
        return None if token is None else token.access

    def get(self, key: str) -> Token | None:
        return self._tokens.get(key)

    async def obtain(self, key: str, login: Login, refresh: Refresh | None = None) -> str:
        """A usable access token for `key`: the cached one while it is fresh; else one
        shared renewal (refresh if possible, login otherwise). Renewals run as their own
        task so a caller hitting its deadline doesn't cancel them for the others."""
        token = self._tokens.get(key)
        if token is not None and self._clock() < token.renew_at:
            self._tokens.move_to_end(key)
            return token.access
        return (await self._renewal(key, token, login, refresh, force_login=False)).access

    async def renew(
        self,
        key: str,
        failed: str,
        login: Login,
        refresh: Refresh | None = None,
        *,
        force_login: bool = False,
    ) -> Token:
        """After a 401 with `failed`: a new token, refreshed if possible (unless
        `force_login`), logged in otherwise. If the cache already holds a different token (a
        neighbour renewed meanwhile) that one is returned without asking the rig."""
        token = self._tokens.get(key)
        if token is not None and token.access != failed:
            return token
        if token is not None:
            del self._tokens[key]
        return await self._renewal(key, token, login, refresh, force_login=force_login)

    async def _renewal(
        self,
        key: str,
        base: Token | None,
        login: Login,
        refresh: Refresh | None,
        *,
        force_login: bool,
    ) -> Token:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._renew(base, login, refresh, force_login))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        return await asyncio.shield(task)

    async def _renew(
        self, base: Token | None, login: Login, refresh: Refresh | None, force_login: bool
    ) -> Token:
        if (
            refresh is not None
            and not force_login
            and base is not None
            and base.refresh is not None
            and (base.refresh_expires_at is None or self._clock() < base.refresh_expires_at)
        ):
            try:
                return self._token(await refresh(base.refresh), base, "refresh")
            except Unreachable:
                raise  # a login would not get through either
            except MinerError:
                pass  # refresh token revoked, expired or not supported: log in
        return self._token(await login(), None, "login")

    def _token(self, grant: str | Grant, base: Token | None, via: str) -> Token:
        if isinstance(grant, str):
            grant = Grant(grant)
        now = self._clock()
        lifetime = jwt_lifetime(grant.access) or self._default_ttl
        renew_at = now + lifetime - min(REFRESH_MARGIN, lifetime / 10)
        refresh, refresh_expires = grant.refresh, None
        if refresh is not None:
            refresh_life = jwt_lifetime(refresh)
            refresh_expires = None if refresh_life is None else now + refresh_life
        elif base is not None:  # a refresh reply: the refresh token stays what it was
            refresh, refresh_expires = base.refresh, base.refresh_expires_at
        return Token(grant.access, refresh, renew_at, refresh_expires, via)

    def _settle(self, key: str, task: asyncio.Task[Token]) -> None:
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
        current = self._tokens.get(key)
        if current is not None and (token is None or current.access == token):
            del self._tokens[key]
