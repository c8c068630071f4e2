"""The pooled aiohttp client the proxy forwards with (one session per event loop)."""

from __future__ import annotations

import asyncio
import weakref

import aiohttp
from yarl import URL

from miners.http import host_for_url, unverified_tls
from proxy.limits import CONNECT_TIMEOUT, TOTAL_TIMEOUT, limit
from proxy.rigs import Rig

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop)
    if found is None or found.closed:
        connector = aiohttp.TCPConnector(
            ssl=unverified_tls(), limit=1024, limit_per_host=4, keepalive_timeout=30
        )
        found = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # bytes pass through as the rig encoded them
            timeout=aiohttp.ClientTimeout(
                total=limit("TOTAL_TIMEOUT", TOTAL_TIMEOUT),
                sock_connect=limit("CONNECT_TIMEOUT", CONNECT_TIMEOUT),
            ),
        )
        _sessions[loop] = found
    return found


def origin(rig: Rig, scheme: str) -> str:
    return f"{scheme}://{host_for_url(rig.host)}:{rig.port}"


async def send(
    rig: Rig,
    scheme: str,
    method: str,
    path_qs: str,
    *,
    headers: dict[str, str],
    body: bytes,
    authorization: str | None,
) -> aiohttp.ClientResponse:
    """One request to the rig, never following redirects; the caller releases the response."""
    sent = dict(headers)
    if authorization is not None:
        sent["Authorization"] = authorization
    return await session().request(
        method,
        URL(origin(rig, scheme) + path_qs, encoded=True),
        headers=sent,
        data=body if body else None,
        allow_redirects=False,
        skip_auto_headers=("User-Agent", "Content-Type"),
    )


async def close() -> None:
    """Close this loop's pooled sessions (the proxy's and the login client's)."""
    from miners.http import close_shared_http

    found = _sessions.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
    await close_shared_http()
