"""Miner tokens for the proxy: shared across processes, single-flight, refreshed early.

One entry per miner and credential version in the shared store (``proxy.store``). A caller
that finds no usable token takes the rig's login lock; everyone else waits for the entry the
holder writes, so N parallel requests — in any number of processes — cause one login. A
renewal prefers ``POST /auth/refresh`` (no revocation of the token others hold) and falls back
to a login. Lifetimes come from the token's JWT claims when it has them (``miners.tokens``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

from miners.errors import AuthFailed, MinerError, Unreachable
from miners.http import shared_http
from miners.protoos_client import ProtoOSClient
from miners.tokens import DEFAULT_ACCESS_TTL, REFRESH_MARGIN, Grant, TokenCache, jwt_lifetime
from proxy.rigs import Rig
from proxy.store import store

LOCK_TTL = 20.0
WAIT_FOR_LOGIN = 20.0
POLL_EVERY = 0.05
MAX_KEEP = 86400.0


@dataclass(frozen=True, slots=True)
class Entry:
    access: str
    refresh: str | None
    renew_at: float
    """Wall-clock time to renew at (a skew window before the access token expires)."""
    refresh_expires_at: float | None
    scheme: str
    via: str

    def usable(self, failed: str | None, now: float) -> bool:
        return self.access != failed and now < self.renew_at


def _client(rig: Rig) -> ProtoOSClient:
    if rig.credentials is None:
        raise AuthFailed("no credentials stored for this miner")
    return ProtoOSClient(
        shared_http(),
        TokenCache(1),
        rig.host,
        rig.port,
        scheme=rig.scheme or None,
        credentials=rig.credentials,
    )


def _entry(grant: Grant, base: Entry | None, scheme: str, via: str) -> Entry:
    now = time.time()
    lifetime = jwt_lifetime(grant.access, now) or DEFAULT_ACCESS_TTL
    renew_at = now + lifetime - min(REFRESH_MARGIN, lifetime / 10)
    refresh, refresh_exp = grant.refresh, None
    if refresh is not None:
        life = jwt_lifetime(refresh, now)
        refresh_exp = None if life is None else now + life
    elif base is not None:
        refresh, refresh_exp = base.refresh, base.refresh_expires_at
    return Entry(grant.access, refresh, renew_at, refresh_exp, scheme, via)


MEMO_ENTRIES = 10_000
_memo: OrderedDict[str, Entry] = OrderedDict()
"""This process's copy of the shared entries it last saw: a hit costs no store round trip. A
copy made stale by another process's login shows as the rig's 401, whose retry reads the
shared store again (``failed``)."""


def _remember(rig: Rig, entry: Entry | None) -> Entry | None:
    if entry is None:
        _memo.pop(rig.token_key, None)
        return None
    _memo[rig.token_key] = entry
    _memo.move_to_end(rig.token_key)
    while len(_memo) > MEMO_ENTRIES:
        _memo.popitem(last=False)
    return entry


async def _load(rig: Rig) -> Entry | None:
    raw = await store().get(rig.token_key)
    if raw is None:
        return _remember(rig, None)
    try:
        return _remember(rig, Entry(**json.loads(raw)))
    except (TypeError, ValueError):
        return _remember(rig, None)


async def _save(rig: Rig, entry: Entry) -> None:
    horizon = max(entry.renew_at, entry.refresh_expires_at or entry.renew_at) - time.time()
    await store().put(rig.token_key, json.dumps(asdict(entry)), min(max(horizon, 1.0), MAX_KEEP))
    _remember(rig, entry)


async def _renew(rig: Rig, base: Entry | None) -> Entry:
    client = _client(rig)
    if base is not None:
        client.scheme = base.scheme
    now = time.time()
    if (
        base is not None
        and base.refresh is not None
        and (base.refresh_expires_at is None or now < base.refresh_expires_at)
    ):
        try:
            grant = await client.refresh_grant(base.refresh)
            return _entry(grant, base, client.scheme or "http", "refresh")
        except Unreachable:
            raise
        except MinerError:
            pass  # refresh token revoked or expired: log in
    grant = await client.login_grant()
    return _entry(grant, None, client.scheme or "http", "login")


async def token_for(rig: Rig, *, failed: str | None = None, renew: bool = False) -> Entry:
    """A usable token for ``rig``. ``failed`` is a token the rig just refused: it is renewed
    unless a neighbour already replaced it. ``renew`` renews a still-valid token (the
    refresh task does that for busy miners ahead of expiry)."""
    memo = _memo.get(rig.token_key)
    if memo is not None and not renew and memo.usable(failed, time.time()):
        return memo
    deadline = time.monotonic() + WAIT_FOR_LOGIN
    shared = store()
    while True:
        entry = await _load(rig)
        if entry is not None and not renew and entry.usable(failed, time.time()):
            return entry
        owner = await shared.acquire(rig.login_lock, LOCK_TTL)
        if owner is not None:
            try:
                entry = await _load(rig)
                if entry is not None and not renew and entry.usable(failed, time.time()):
                    return entry
                fresh = await _renew(rig, entry)
                await _save(rig, fresh)
                return fresh
            finally:
                await shared.release(rig.login_lock, owner)
        if time.monotonic() > deadline:
            raise Unreachable("timed out waiting for another process to log in to the rig")
        renew = False  # somebody else is renewing: their token will do
        await asyncio.sleep(POLL_EVERY)


async def token_due(rig: Rig, within: float) -> bool:
    """Whether the cached token must be renewed within ``within`` seconds."""
    entry = await _load(rig)
    return entry is not None and entry.renew_at - time.time() < within
