"""HTTP plumbing shared by the ProtoOS and Antminer web servers.

One `aiohttp.web.Server` per firmware kind listens on every miner's address; the handler picks
the miner from the local socket address, applies that miner's faults, then routes by path with
a dictionary lookup — no aiohttp Application, middlewares or per-miner objects on the hot path.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_exceptions import HTTPException

from miners.sim.clock import Clock
from miners.sim.state import Miner

JSON_TYPE = "application/json"
KeyOf = Callable[[Any], str | None]
"""The miner a connection's local address (`sockname`) belongs to."""


def by_address(sockname: Any) -> str | None:
    """One miner per address (the default; port-per-miner mode maps ports, see single.py)."""
    return str(sockname[0]) if sockname else None


class HttpError(Exception):
    """Raised by handlers; each firmware renders it in its own error format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Hooks(Protocol):
    """What handlers may ask of the fleet (kept narrow so handlers stay testable)."""

    @property
    def clock(self) -> Clock: ...

    def reboot(self, miner: Miner, downtime: float | None = None) -> None: ...


class Call:
    """One request to one miner, with the clock read once so a reply is self-consistent."""

    __slots__ = ("hooks", "miner", "now", "params", "request")

    def __init__(
        self,
        miner: Miner,
        request: web.BaseRequest,
        hooks: Hooks,
        params: dict[str, str],
    ) -> None:
        self.miner = miner
        self.request = request
        self.hooks = hooks
        self.params = params
        self.now = hooks.clock.now()

    async def body(self) -> Any:
        """The JSON body; malformed or oversized bodies become 400/413, never a crash."""
        try:
            raw = await self.request.read()
        except HTTPException as exc:
            raise HttpError(exc.status, "INVALID_REQUEST", exc.reason) from None
        if not raw.strip():
            raise HttpError(400, "INVALID_REQUEST", "request body is required")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "INVALID_REQUEST", "request body is not valid JSON") from None

    async def body_object(self) -> dict[str, Any]:
        data = await self.body()
        if not isinstance(data, dict):
            raise HttpError(400, "INVALID_REQUEST", "request body must be a JSON object")
        return data


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    public: bool = False
    gated: bool = False


class Router:
    """Exact paths in a dict, `{param}` templates matched segment by segment."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._exact: dict[str, dict[str, Route]] = {}
        self._templates: list[tuple[tuple[str, ...], dict[str, Route]]] = []

    def add(self, method: str, path: str, handler: Handler, **opts: bool) -> None:
        full = self.prefix + path
        route = Route(handler, **opts)
        if "{" not in full:
            self._exact.setdefault(full, {})[method] = route
            return
        parts = tuple(full.strip("/").split("/"))
        for existing, methods in self._templates:
            if existing == parts:
                methods[method] = route
                return
        self._templates.append((parts, {method: route}))

    def route(self, method: str, path: str, **opts: bool) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, path, handler, **opts)
            return handler

        return register

    def match(self, path: str) -> tuple[dict[str, Route], dict[str, str]] | None:
        methods = self._exact.get(path)
        if methods is not None:
            return methods, {}
        parts = path.strip("/").split("/")
        for template, methods in self._templates:
            if len(template) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(template, parts, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return methods, params
        return None


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (str compare_digest raises)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON_TYPE,
    )


def message(text: str, status: int = 200) -> web.Response:
    return json_response({"message": text}, status)


async def apply_faults(miner: Miner, request: web.BaseRequest) -> web.StreamResponse | None:
    """Play the miner's transport-level faults; a response means "send this instead"."""
    slow = miner.fault("slow")
    if slow is not None:
        await asyncio.sleep(slow["ms"] / 1000)
    garbage = miner.fault("garbage")
    if garbage is not None:
        transport = request.transport
        if transport is not None:
            transport.write(os.urandom(garbage["bytes"]))
            transport.close()
        return web.Response()  # never sent: aiohttp drops writes to a closed transport
    if miner.has_fault("http500"):
        return web.Response(status=500, text="Internal Server Error")
    return None


Dispatch = Callable[[Miner, web.BaseRequest], Awaitable[web.StreamResponse]]
BootRoutes = Callable[[Miner, web.BaseRequest], bool]
"""Whether a rebooting (not unplugged) miner still answers this request."""


def _never(miner: Miner, request: web.BaseRequest) -> bool:
    return False


class _HalfCloseHandler(web.RequestHandler):
    """aiohttp drops a connection as soon as the client half-closes it, so a client that
    writes its request and then shuts down its sending side (`nc -N`, some scanners) got no
    answer. Firmware web servers answer it: finish the request(s) already received, reply,
    then close."""

    client_done = False

    def eof_received(self) -> bool:  # type: ignore[override]
        self.client_done = True
        if not self._messages:
            self.close()  # nothing queued: close once the request in hand (if any) is answered
        # keep the transport open for the replies; over TLS asyncio closes it anyway (a
        # close_notify ends the session) and logs a warning for every True
        transport = self.transport
        return transport is None or transport.get_extra_info("ssl_object") is None

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        if self.client_done and not self._messages:
            self.close()  # the last pipelined request is answered
        return result


class MinerServer(web.Server):
    """An aiohttp server that knows which miner address each connection belongs to, so a
    rebooting miner's connections can be dropped as a real reboot drops them."""

    def __init__(self, *args: Any, key_of: KeyOf = by_address, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_of = key_of
        self._by_host: dict[str, dict[web.RequestHandler, asyncio.Transport]] = {}
        self._host_of: dict[web.RequestHandler, str] = {}
        self.busy: set[web.RequestHandler] = set()  # connections with a request in hand

    def __call__(self) -> web.RequestHandler:
        return _HalfCloseHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        host = self.key_of(transport.get_extra_info("sockname"))
        if host is not None:
            self._by_host.setdefault(host, {})[handler] = transport
            self._host_of[handler] = host

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        host = self._host_of.pop(handler, None)
        conns = self._by_host.get(host) if host is not None else None
        if conns is not None:
            conns.pop(handler, None)
            if not conns and host is not None:
                del self._by_host[host]

    def drop(self, host: str) -> None:
        """End every open connection to `host`, as a reboot does: idle ones are reset at once
        (clients see it and don't reuse their pooled connections), busy ones are closed once
        their reply (the reboot's own 202) is out."""
        for handler, transport in list(self._by_host.pop(host, {}).items()):
            self._host_of.pop(handler, None)
            if handler in self.busy:
                handler.close()
            else:
                transport.abort()


def miner_server(
    resolve: Callable[[str], Miner | None],
    dispatch: Dispatch,
    clock: Clock,
    booting: BootRoutes = _never,
    key_of: KeyOf = by_address,
) -> MinerServer:
    """The low-level aiohttp server shared by every miner of one firmware kind. While a miner
    reboots, only what `booting` allows is answered; everything else drops the connection."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        conn = request.protocol
        server.busy.add(conn)
        try:
            return await serve(request)
        finally:
            server.busy.discard(conn)

    async def serve(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        host = key_of(sockname)
        miner = resolve(host) if host is not None else None
        if miner is None or transport is None:
            return web.Response(status=404, text="no simulated miner here")
        if miner.is_down(clock.now()) and (
            miner.has_fault("offline") or not booting(miner, request)
        ):
            # Unplugged (a kept-alive connection), or a route the rebooting rig doesn't serve
            # yet: reset it like a dead host.
            transport.abort()
            return web.Response()
        if miner.faults:
            replaced = await apply_faults(miner, request)
            if replaced is not None:
                return replaced
        return await dispatch(miner, request)

    server = MinerServer(handle, access_log=None, keepalive_timeout=75, key_of=key_of)
    return server
