"""Stock Antminer web CGI through the proxy: HTTP Digest answered by the server.

The browser never sees the challenge or the password: the rig's ``WWW-Authenticate`` is
dropped from responses (``proxy.headers``) and the ``Authorization`` the rig gets is ours.
Each process keeps the last challenge per rig and credential version (bounded LRU) and answers
it with an increasing nonce count, so steady traffic costs no extra round trip; a 401 (stale
or new nonce) is answered once with the fresh challenge, and a second 401 means the stored
credentials are wrong (``AuthFailed`` → "credentials rejected — update them").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable

import aiohttp

from miners import Credentials, digest
from miners.antminer_web import DEFAULT_PASSWORD, DEFAULT_USER
from miners.digest import Challenge
from proxy import upstream
from proxy.rigs import Rig

MAX_CHALLENGES = 10_000
_challenges: OrderedDict[str, Challenge] = OrderedDict()


def _credentials(rig: Rig) -> Credentials:
    """The stored credentials, or the stock firmware's root/root (as the driver does)."""
    return rig.credentials or Credentials(password=DEFAULT_PASSWORD, username=DEFAULT_USER)


def _remember(rig: Rig, challenge: Challenge) -> None:
    _challenges[rig.token_key] = challenge
    _challenges.move_to_end(rig.token_key)
    while len(_challenges) > MAX_CHALLENGES:
        _challenges.popitem(last=False)


async def exchange(
    rig: Rig, method: str, path_qs: str, forwarded: dict[str, str], body: bytes
) -> aiohttp.ClientResponse:
    """The rig's answer to ``method path_qs``; at most one fresh challenge is answered."""
    creds = _credentials(rig)

    def send(auth: str | None) -> Awaitable[aiohttp.ClientResponse]:
        return upstream.send(
            rig, "http", method, path_qs, headers=forwarded, body=body, authorization=auth
        )

    def remember(challenge: Challenge | None) -> None:
        if challenge is None:
            _challenges.pop(rig.token_key, None)
        else:
            _remember(rig, challenge)

    return await digest.exchange(
        send,
        _challenges.get(rig.token_key),
        creds.username or DEFAULT_USER,
        creds.password,
        method,
        path_qs,
        remember,
    )
