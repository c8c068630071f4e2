"""``/api-proxy/``: a raw ASGI handler in front of Django's (sync) middleware stack.

``config.asgi`` routes the prefix here. Order: path shape → Host → browser-navigation and
same-origin rules → caller + miner + permission (one hop to a small database thread pool,
``proxy.access``) → rate limit → request body (capped) → per-miner gate → the rig with its
token or digest answer (401 → one renewal → one retry) → response headers filtered, body
streamed under a cap. A write's audit event is written while the response streams, and the
response's last chunk is held back until it is committed: no client sees a write complete
that the activity log does not have.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, parse_cookie
from django.middleware.csrf import CsrfViewMiddleware

from accounts.actor import client_ip
from miners.errors import AuthFailed, MinerError, Unreachable
from proxy import access, antminer, db, headers, limits, tokens, tunnelled, upstream
from proxy.pathmap import READ_METHODS
from proxy.paths import PathRefused, split
from proxy.refresh import mark_busy
from proxy.rigs import Rig
from proxy.store import store

Scope = dict[str, Any]
CREDENTIALS_REJECTED = "credentials rejected — update them"
CHUNK = 64 * 1024


def _json_response(status: int, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    data = json.dumps(body).encode()
    pairs = headers.response_headers([("content-type", "application/json")])
    return status, [*pairs, ("content-length", str(len(data)))], data


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    code, pairs, data = _json_response(status, body)
    await send({"type": "http.response.start", "status": code, "headers": _enc(pairs)})
    await send({"type": "http.response.body", "body": data})


def _enc(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


class Request:
    """The parts of the ASGI scope the proxy looks at."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"].upper()
        raw = scope.get("raw_path") or scope["path"].encode()
        self.raw_path = raw.decode("latin-1").split("?", 1)[0]
        self.query: str = scope.get("query_string", b"").decode("latin-1")
        self.headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        ]

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")

    @property
    def is_write(self) -> bool:
        return self.method not in READ_METHODS

    def django(self) -> ASGIRequest:
        return ASGIRequest(self.scope, io.BytesIO())


def _browser_rules(request: Request, host: str) -> None:
    """Navigations never reach a miner; writes come from our own pages (or no browser)."""
    mode, dest = request.header("sec-fetch-mode"), request.header("sec-fetch-dest")
    accept = request.header("accept")
    if mode == "navigate" or dest in ("document", "iframe", "frame", "embed", "object"):
        raise access.Refusal(403, "the proxy is an API, not a page: open the miner's view")
    if not mode and accept.lstrip().lower().startswith("text/html"):
        raise access.Refusal(403, "the proxy is an API, not a page: open the miner's view")
    if request.is_write:
        _same_origin(request, host)


def _same_origin(request: Request, host: str) -> None:
    """A write (by method, or a CGI the map treats as one) comes from our pages or no browser."""
    site = request.header("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        raise access.Refusal(403, "cross-site writes are refused")
    origin = request.header("origin")
    if origin:
        scheme = "https" if request.scope.get("scheme") == "https" else "http"
        trusted = {f"{scheme}://{host}", *settings.CSRF_TRUSTED_ORIGINS}
        if origin not in trusted:
            raise access.Refusal(403, "cross-origin writes are refused")


def _csrf_ok(request: Request) -> bool:
    django_request = request.django()
    middleware = CsrfViewMiddleware(lambda _r: HttpResponse())
    middleware.process_request(django_request)
    return middleware.process_view(django_request, _csrf_view, (), {}) is None


def _csrf_view(_request: Any) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def _authorize(request: Request, miner_id: int, path: str) -> tuple[access.Caller, access.Grant]:
    """The thread-hop part: caller, CSRF for session writes, miner, permission."""
    cookies = parse_cookie(request.header("cookie"))
    django_request = request.django()
    caller = access.authenticate(
        authorization=request.header("authorization"),
        session_key=cookies.get(settings.SESSION_COOKIE_NAME),
        ip=client_ip(django_request),
    )
    if caller.session and request.is_write:
        if not request.header("origin"):
            raise access.Refusal(403, "writes need an Origin header")
        if not _csrf_ok(request):
            raise access.Refusal(403, "CSRF check failed: send the X-CSRFToken header")
    grant = access.resolve(caller, miner_id=miner_id, method=request.method, path=path)
    return caller, grant


_recent: OrderedDict[tuple[str, int, str, str], tuple[float, Any]] = OrderedDict()


async def _authorized(
    request: Request, miner_id: int, path: str
) -> tuple[access.Caller, access.Grant]:
    """``_authorize``, remembered for ``AUTH_CACHE_SECONDS`` for reads only: a page's live
    reads repeat the same few calls every second. Writes always take the full path."""
    if request.is_write:
        return await db.run(_authorize, request, miner_id, path)
    ident = hashlib.sha256(
        (request.header("authorization") + "\0" + request.header("cookie")).encode()
    ).hexdigest()
    key = (ident, miner_id, request.method, path)
    now = time.monotonic()
    found = _recent.get(key)
    if found is not None and found[0] > now:
        return found[1]  # type: ignore[no-any-return]
    result = await db.run(_authorize, request, miner_id, path)
    if result[1].write:
        return result  # a CGI that is a write on GET: never reused
    _recent[key] = (now + limits.limit("AUTH_CACHE_SECONDS", limits.AUTH_CACHE_SECONDS), result)
    _recent.move_to_end(key)
    while len(_recent) > limits.AUTH_CACHE_ENTRIES:
        _recent.popitem(last=False)
    return result


async def _rate_limited(caller: access.Caller) -> bool:
    per_minute = int(limits.limit("RATE_PER_MINUTE", limits.RATE_PER_MINUTE))
    window = int(time.time() // 60)
    return await store().hit(f"rw:proxy:rate:{caller.user.pk}:{window}", 61) > per_minute


async def _body(receive: Any) -> bytes:
    cap = int(limits.limit("REQUEST_MAX_BYTES", limits.REQUEST_MAX_BYTES))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise access.Refusal(413, f"request body over {cap} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _bearer_exchange(
    rig: Rig, method: str, path_qs: str, forwarded: dict[str, str], body: bytes
) -> aiohttp.ClientResponse:
    """ProtoOS: the shared token; one renewal and one retry after a 401, never more."""
    failed: str | None = None
    for _ in range(2):  # the token we hold, then once a renewed one
        entry = await tokens.token_for(rig, failed=failed)
        reply = await upstream.send(
            rig,
            entry.scheme,
            method,
            path_qs,
            headers=forwarded,
            body=body,
            authorization=f"Bearer {entry.access}",
        )
        if reply.status != 401:
            return reply
        reply.release()
        failed = entry.access
    raise AuthFailed("the rig refused the renewed token")


async def _exchange(rig: Rig, request: Request, path: str, body: bytes) -> aiohttp.ClientResponse:
    """The rig's response, authenticated the way its driver's API wants."""
    forwarded = headers.request_headers(request.headers)
    path_qs = path + (f"?{request.query}" if request.query else "")
    try:
        if rig.driver == "antminer":
            reply = await antminer.exchange(rig, request.method, path_qs, forwarded, body)
        else:
            reply = await _bearer_exchange(rig, request.method, path_qs, forwarded, body)
    except AuthFailed as exc:
        raise access.Refusal(502, CREDENTIALS_REJECTED, detail=str(exc)) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise access.Refusal(504, "the miner did not answer in time") from exc
    except (Unreachable, aiohttp.ClientError, OSError) as exc:
        raise access.Refusal(502, f"the miner is unreachable: {exc}") from exc
    except MinerError as exc:
        raise access.Refusal(502, f"the miner refused the login: {exc}") from exc
    return reply


def _location(reply: aiohttp.ClientResponse, rig: Rig) -> list[tuple[str, str]]:
    """A redirect the browser may follow: on the rig → through the proxy; elsewhere → refused."""
    location = reply.headers.get("location")
    if not location:
        return []
    here = str(reply.url)
    target = urlsplit(urljoin(here, location))
    if (target.scheme, target.netloc) != (urlsplit(here).scheme, urlsplit(here).netloc):
        raise access.Refusal(502, "the miner redirected off itself; refused")
    split(f"/api-proxy/miners/{rig.miner_id}{target.path}")  # same path rules
    query = f"?{target.query}" if target.query else ""
    return [("location", f"/api-proxy/miners/{rig.miner_id}{target.path}{query}")]


async def _stream(
    send: Any,
    reply: aiohttp.ClientResponse,
    rig: Rig,
    started: list[bool],
    before_end: asyncio.Future[None] | None = None,
) -> None:
    """Headers, then the body chunk by chunk under the cap. The last chunk waits for
    ``before_end`` (a write's audit insert): if that fails the connection is cut instead."""
    cap = int(limits.limit("RESPONSE_MAX_BYTES", limits.RESPONSE_MAX_BYTES))
    if (reply.content_length or 0) > cap:
        raise access.Refusal(502, f"the miner's response is over {cap} bytes")
    pairs = headers.response_headers(reply.headers.items()) + _location(reply, rig)
    if reply.content_length is not None:
        pairs.append(("content-length", str(reply.content_length)))
    started[0] = True
    await send({"type": "http.response.start", "status": reply.status, "headers": _enc(pairs)})
    await send_capped_body(send, reply.content.iter_chunked(CHUNK), cap, before_end)


async def send_capped_body(
    send: Any, chunks: AsyncIterator[bytes], cap: int, before_end: Awaitable[None] | None
) -> None:
    """The response body as it comes, chunk by chunk; the connection is cut once it is over
    ``cap`` bytes. The last chunk waits for ``before_end`` (a write's audit insert): if that
    fails the connection is cut instead of completed."""
    sent = 0
    held = b""
    async for chunk in chunks:
        sent += len(chunk)
        if sent > cap:
            raise ConnectionAbortedError("response over the cap: connection cut")
        if held:
            await send({"type": "http.response.body", "body": held, "more_body": True})
        held = chunk
    if before_end is not None:
        await before_end
    await send({"type": "http.response.body", "body": held})


async def _proxy(scope: Scope, receive: Any, send: Any, started: list[bool]) -> None:
    request = Request(scope)
    try:
        target = split(request.raw_path)
    except PathRefused as exc:
        raise access.Refusal(400, str(exc)) from exc
    try:
        host = request.django().get_host()
    except DisallowedHost as exc:
        raise access.Refusal(400, "host not allowed") from exc
    _browser_rules(request, host)
    caller, grant = await _authorized(request, target.miner_id, target.path)
    rig, permission, write = grant.rig, grant.permission, grant.write
    if write and not request.is_write:
        _same_origin(request, host)
    if await _rate_limited(caller):
        raise access.Refusal(429, "too many proxied requests: slow down")
    body = await _body(receive)
    gate = limits.miner_gate(rig.miner_id)
    try:
        await asyncio.wait_for(gate.acquire(), limits.limit("QUEUE_WAIT", limits.QUEUE_WAIT))
    except TimeoutError as exc:
        raise access.Refusal(503, "the miner is busy with other proxied requests") from exc
    status = 502
    audit: asyncio.Future[None] | None = None
    try:
        if rig.node_id is not None:  # a node-owned miner: through the node's control stream

            def opened(code: int) -> asyncio.Future[None] | None:
                nonlocal status, audit
                status = code
                if write:
                    audit = _audit(caller, rig, request, target.path, code, permission)
                return audit

            try:
                await tunnelled.forward(
                    rig, request, target.path, body, receive, send, started, opened
                )
            except access.Refusal as refusal:
                status = refusal.status if audit is None else status
                raise
            return
        try:
            reply = await _exchange(rig, request, target.path, body)
        except access.Refusal as refusal:
            status = refusal.status
            raise
        async with reply:
            status = reply.status
            mark_busy(rig.miner_id)
            if write:
                audit = _audit(caller, rig, request, target.path, status, permission)
            await _stream(send, reply, rig, started, audit)
    except access.Refusal:
        if write and audit is None and status >= 500:
            await _audit(caller, rig, request, target.path, status, permission)
        raise
    finally:
        gate.release()
        if audit is not None and not audit.done():
            await asyncio.shield(audit)  # a cut stream still records the write


def _audit(
    caller: access.Caller, rig: Rig, request: Request, path: str, status: int, permission: str
) -> asyncio.Future[None]:
    """The write's activity event, inserted from now on (concurrently with the streaming)."""
    return asyncio.ensure_future(
        db.run(
            access.record_write,
            caller,
            rig,
            method=request.method,
            path=path,
            status=status,
            permission=permission,
        )
    )


async def proxy_http(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI entry point for ``/api-proxy/``."""
    started = [False]
    try:
        await _proxy(scope, receive, send, started)
    except access.Refusal as refusal:
        if started[0]:
            raise ConnectionAbortedError(refusal.error) from refusal
        await _answer(send, refusal.status, {"error": refusal.error, **refusal.extra})
