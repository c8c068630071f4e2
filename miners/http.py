"""The one HTTP client every HTTP-speaking driver uses.

Polling thousands of rigs every few seconds is dominated by per-request CPU, so: one
`aiohttp` session and connector shared by all devices (keep-alive connections are reused
across polls, TLS handshakes happen once per connection), no cookie jar (rigs must never
see each other's cookies and the jar costs CPU), bodies read as bytes and parsed once.
Miners ship self-signed certificates, so TLS is encrypted but unverified — identity comes
from serial/MAC, not from the certificate.
"""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
import weakref
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from miners.errors import BadResponse, Timeout, Unreachable

MAX_BODY = 8 * 1024 * 1024
"""Largest reply body we read (logs are the big ones: 10,000 lines)."""


@cache
def unverified_tls() -> ssl.SSLContext:
    """TLS context that accepts any certificate: miners are self-signed by design."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def host_for_url(host: str) -> str:
    """IPv6 literals need brackets inside a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(slots=True)
class HttpReply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; a reply that isn't JSON is a `BadResponse`, not a crash."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadResponse(f"expected JSON, got {self.body[:80]!r}", status=self.status) from exc

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpClient:
    """A pooled session shared by many devices. Create one per process (or use
    `shared_http()`), pass it to drivers, close it at shutdown."""

    def __init__(
        self,
        *,
        limit: int = 0,
        limit_per_host: int = 4,
        keepalive_timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=unverified_tls(),
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                auto_decompress=True,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        params: dict[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply. Transport failures become
        `Unreachable` (with the errno name as `code`, so callers can tell a refused port
        from a TLS mismatch); deadlines are the caller's (`miners.deadline.within`)."""
        if json_body is not None:
            data = json.dumps(json_body)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            async with self._get_session().request(
                method, url, headers=headers, data=data, params=params, allow_redirects=False
            ) as resp:
                body = await resp.content.read(MAX_BODY)
                return HttpReply(resp.status, resp.headers, body)
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"{url}: {exc.strerror or exc}", code=_errno_name(exc)) from exc
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            raise BadResponse(f"{url}: malformed HTTP reply: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"{url}: {type(exc).__name__}: {exc}", code="EPROTO") from exc
        except TimeoutError as exc:
            raise Timeout(f"{url}: connect timed out") from exc

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _errno_name(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return "ETLS"
    number = exc.os_error.errno
    return errno.errorcode.get(number, "ECONNECT") if number else "ECONNECT"


def is_refused(exc: Unreachable) -> bool:
    """True when nothing listens on the port (a scheme fallback can't help then)."""
    return exc.code in ("ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH")


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HttpClient] = (
    weakref.WeakKeyDictionary()
)


def shared_http() -> HttpClient:
    """The default client for the running event loop (sessions are bound to a loop)."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        client = _shared[loop] = HttpClient()
    return client


async def close_shared_http() -> None:
    """Close the running loop's default client; call before the loop ends."""
    client = _shared.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()
