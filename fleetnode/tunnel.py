"""The node's end of tunnels (docs/protocol.md, "Tunnels"): HTTP to its own miners for the
proxy, TCP streams for terminals. Every frame is untrusted; the node decides what it dials.

HTTP (``tunnel_request``): only a miner assigned to this node, only under its driver's API
prefix (ProtoOS REST, stock Antminer web CGI), the same path rules (``fleetnode.paths``) and
the same method + path map refusals as the proxy (``miners.apimap``: credential endpoints,
pool writes, CGIs that change the miner on GET), the request-header allowlist again, and the
miner's address refused when it is loopback, link-local, multicast or unspecified unless
``FLEETNODE_TUNNEL_ALLOW`` lists its range. The node logs in with the credentials it holds
(sealed to it): a ProtoOS rig with a bearer token from the poller's token cache (so a
tunnelled request never costs the poller its token), a stock Antminer by answering its HTTP
Digest challenge on the web port (the last challenge kept per miner, one fresh challenge
answered per request). Redirects are not followed; a ``Location`` off the miner is refused.

TCP (``tunnel_open``): to an assigned miner's SSH port (22), or to any address in
``FLEETNODE_TUNNEL_ALLOW`` (``CIDR`` or ``CIDR#port``, comma separated).

Both kinds are bounded: ``TUNNEL_MAX_OPEN`` at once, one window of unacknowledged data each
way, bodies capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from fleetnode.assignment import AssignedMiner, AssignmentError, open_credentials
from fleetnode.node import Node
from fleetnode.paths import PathRefused, check, under_prefix
from fleetnode.protocol import (
    TUNNEL_CHUNK,
    TUNNEL_HEADERS_MAX,
    TUNNEL_MAX_FRAMES,
    TUNNEL_MAX_OPEN,
    TUNNEL_REQUEST_MAX,
    TUNNEL_RESPONSE_MAX,
    TUNNEL_WINDOW,
    ProtocolError,
    b64decode,
    tunnel_close,
    tunnel_data,
    tunnel_data_bytes,
    tunnel_id,
    tunnel_window_bytes,
)
from miners import Credentials, digest
from miners.antminer_web import DEFAULT_PASSWORD, DEFAULT_USER
from miners.apimap import PREFIXES, classify, http_port
from miners.digest import Challenge
from miners.errors import AuthFailed, MinerError, Unreachable
from miners.http import host_for_url, shared_http, unverified_tls
from miners.protoos_client import ProtoOSClient
from miners.tokens import TokenCache

log = logging.getLogger("fleetnode.tunnel")

ALLOW_ENV = "FLEETNODE_TUNNEL_ALLOW"
NEVER = {"protoos": ("/auth", "/system/unlock", "/pairing/auth-key")}  # relative to the prefix
MAX_CHALLENGES = 4096
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_HEADERS = frozenset({"accept", "accept-language", "content-type", "range"})
RESPONSE_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "www-authenticate",
        "content-length",
    }
)
SSH_PORT = 22
CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 30.0
STREAM_CONNECT_TIMEOUT_S = 10.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Send = Callable[[dict[str, Any]], None]


class Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Allow:
    """``FLEETNODE_TUNNEL_ALLOW``: ranges a tunnel may reach beyond the defaults."""

    rules: tuple[tuple[Network, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allow:
        rules = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            net, _, port = item.partition("#")
            try:
                network = ipaddress.ip_network(net.strip(), strict=False)
                number = int(port) if port else None
            except ValueError:
                raise ValueError(f"{ALLOW_ENV}: {item!r} is not CIDR or CIDR#port") from None
            if number is not None and not 0 < number < 65536:
                raise ValueError(f"{ALLOW_ENV}: port of {item!r} is not 1-65535")
            rules.append((network, number))
        return cls(tuple(rules))

    @classmethod
    def from_env(cls) -> Allow:
        return cls.parse(os.environ.get(ALLOW_ENV, ""))

    def allows(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return any(
            address.version == net.version and address in net and rule in (None, port)
            for net, rule in self.rules
        )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise Refused("refused", f"{host[:80]!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_target(host: str, port: int, allow: Allow) -> str:
    """The address to dial, or ``Refused``: loopback, link-local, multicast and unspecified
    addresses only when the allowlist names them."""
    address = _address(host)
    if allow.allows(address, port):
        return str(address)
    for what, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    ):
        if flag:
            raise Refused("refused", f"{address} is a {what} address; not in {ALLOW_ENV}")
    return str(address)


@dataclass
class _Open:
    kind: str
    task: asyncio.Task[None] | None = None
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    credit: int = TUNNEL_WINDOW
    frames: int = 0  # data frames sent and not granted back yet
    credit_changed: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0  # data bytes the server sent and we haven't granted back yet
    closed: bool = False


class Tunnels:
    """Every tunnel of the current connection; ``close_all`` when the connection ends."""

    def __init__(self, node: Node, send: Send, *, allow: Allow | None = None) -> None:
        self.node = node
        self.send = send
        self.allow = allow if allow is not None else Allow.from_env()
        self.open: dict[str, _Open] = {}
        self.finished: dict[str, int] = {}  # reason → count (tests and logs)
        self._http: aiohttp.ClientSession | None = None
        self._challenges: dict[int, Challenge] = {}  # miner id → its last digest challenge

    # --- frames from the server ------------------------------------------------------------
    def handle(self, frame: dict[str, Any]) -> None:
        """One ``tunnel_*`` frame. Never raises."""
        kind = str(frame.get("type"))
        try:
            tid = tunnel_id(frame)
        except ProtocolError as exc:
            log.warning("ignoring %s: %s", kind[:40], exc)
            return
        found = self.open.get(tid)
        if kind in ("tunnel_request", "tunnel_open"):
            if found is not None:
                return
            if len(self.open) >= TUNNEL_MAX_OPEN:
                self.send(tunnel_close(tid, "busy", f"{TUNNEL_MAX_OPEN} tunnels already open"))
                return
            entry = _Open("http" if kind == "tunnel_request" else "tcp")
            self.open[tid] = entry
            runner = self._http_tunnel if kind == "tunnel_request" else self._tcp_tunnel
            entry.task = asyncio.create_task(self._run(tid, entry, runner, frame))
            return
        if found is None:
            return  # closed already (both ends closing at once)
        if kind == "tunnel_close":
            found.closed = True
            if found.task is not None:
                found.task.cancel()
        elif kind == "tunnel_window":
            try:
                found.credit = min(found.credit + tunnel_window_bytes(frame), TUNNEL_WINDOW)
                found.frames = max(0, found.frames - 1)
            except ProtocolError as exc:
                self._abort(tid, found, str(exc))
                return
            found.credit_changed.set()
        elif kind == "tunnel_data":
            size = len(str(frame.get("data", ""))) * 3 // 4
            found.received += size
            if found.received > TUNNEL_WINDOW + 3:
                self._abort(tid, found, "the server sent more than its window")
                return
            found.inbox.put_nowait(frame)

    def _abort(self, tid: str, entry: _Open, error: str) -> None:
        log.warning("tunnel %s: %s", tid, error)
        self.send(tunnel_close(tid, "error", error))
        entry.closed = True
        if entry.task is not None:
            entry.task.cancel()

    async def _run(self, tid: str, entry: _Open, runner: Any, frame: dict[str, Any]) -> None:
        reason, error = "done", ""
        try:
            await runner(tid, entry, frame)
        except Refused as exc:
            reason, error = exc.reason, exc.message
        except asyncio.CancelledError:
            reason = "cancelled"
        except (TimeoutError, aiohttp.ServerTimeoutError):
            reason, error = "timeout", "the target did not answer in time"
        except (Unreachable, aiohttp.ClientError, OSError) as exc:
            reason, error = "unreachable", f"can't reach the target: {exc}"[:500]
        except ProtocolError as exc:
            reason, error = "error", str(exc)
        except Exception as exc:  # a bug costs one tunnel, not the node
            log.exception("tunnel %s crashed", tid)
            reason, error = "error", f"node error: {type(exc).__name__}"
        finally:
            self.open.pop(tid, None)
            self.finished[reason] = self.finished.get(reason, 0) + 1
            if not entry.closed:
                self.send(tunnel_close(tid, reason, error))
            if reason not in ("done", "cancelled"):
                log.info("tunnel %s (%s) ended: %s %s", tid, entry.kind, reason, error)

    def close_all(self) -> None:
        """The connection ended: every tunnel with it (their ends learned from the server)."""
        for entry in list(self.open.values()):
            entry.closed = True
            if entry.task is not None:
                entry.task.cancel()

    async def stop(self) -> None:
        self.close_all()
        tasks = [e.task for e in self.open.values() if e.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    # --- flow control -------------------------------------------------------------------
    async def _write(self, tid: str, entry: _Open, data: bytes, *, eof: bool = False) -> None:
        """One data frame within the server's credit (waits for more: backpressure). The
        server grants per frame consumed; frames are capped too, so small reads can't queue
        thousands of frames behind the connection's send pacing."""
        while entry.credit < len(data) or entry.frames >= TUNNEL_MAX_FRAMES:
            entry.credit_changed.clear()
            await entry.credit_changed.wait()
        entry.credit -= len(data)
        entry.frames += 1 if data else 0
        self.send(tunnel_data(tid, data, eof=eof))

    async def _read(self, tid: str, entry: _Open) -> tuple[bytes, bool]:
        frame = await entry.inbox.get()
        data = tunnel_data_bytes(frame)
        return data, frame.get("eof") is True

    def _granted(self, tid: str, entry: _Open, size: int) -> None:
        entry.received = max(0, entry.received - size)
        if size:
            self.send({"type": "tunnel_window", "id": tid, "bytes": size})

    # --- HTTP -----------------------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=unverified_tls(), limit_per_host=4),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(
                    total=TOTAL_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S
                ),
            )
        return self._http

    def _target(self, frame: dict[str, Any]) -> tuple[AssignedMiner, str, str, str]:
        miner_id, method, path = frame.get("miner_id"), frame.get("method"), frame.get("path")
        query = frame.get("query", "")
        if isinstance(miner_id, bool) or not isinstance(miner_id, int):
            raise Refused("refused", "miner_id is not an integer")
        miner = self.node.assignment.miners.get(miner_id)
        if miner is None:
            raise Refused("refused", f"miner {miner_id} is not assigned to this node")
        prefix = PREFIXES.get(miner.info.driver)
        if prefix is None:
            raise Refused("refused", f"the {miner.info.driver} driver has no tunnelled API")
        if not isinstance(method, str) or method not in METHODS:
            raise Refused("refused", "method not allowed")
        if not isinstance(path, str) or not isinstance(query, str) or len(path) + len(query) > 4096:
            raise Refused("refused", "path and query must be short strings")
        try:
            check(path)
        except PathRefused as exc:
            raise Refused("refused", str(exc)) from None
        relative = under_prefix(path, prefix)
        if relative is None:
            raise Refused("refused", f"{miner.info.driver} miners are reached under {prefix}/")
        never = NEVER.get(miner.info.driver, ())
        if any(relative == p or relative.startswith(p + "/") for p in never):
            raise Refused("refused", "credential endpoints are never tunnelled")
        refusal = classify(miner.info.driver, method, relative).refusal
        if refusal is not None:  # the server refuses these too; a node doesn't trust it did
            raise Refused("refused", f"{method} {relative} is never tunnelled ({refusal})")
        if any(c in query for c in "\r\n\x00 #"):
            raise Refused("refused", "control character in the query")
        return miner, method, path, query

    @staticmethod
    def _request_headers(raw: Any) -> dict[str, str]:
        if not isinstance(raw, list) or len(raw) > TUNNEL_HEADERS_MAX:
            raise Refused("refused", "headers: a short list of [name, value]")
        out: dict[str, str] = {}
        for item in raw:
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(p, str) for p in item)
            ):
                raise Refused("refused", "headers: [name, value] strings")
            name, value = item[0].lower(), item[1]
            if any(c in name + value for c in "\r\n\x00") or len(value) > 8192:
                raise Refused("refused", "headers: bad characters or too long")
            if name in REQUEST_HEADERS or name.startswith("if-"):
                out[name] = value
        return out

    async def _body(self, tid: str, entry: _Open, frame: dict[str, Any]) -> bytes:
        body = b64decode(frame.get("body", ""), field="tunnel_request.body")
        if len(body) > TUNNEL_CHUNK:
            raise Refused("too_large", "tunnel_request.body over one chunk")
        parts, size, more = [body], len(body), frame.get("more") is True
        while more:
            data, eof = await asyncio.wait_for(self._read(tid, entry), TOTAL_TIMEOUT_S)
            size += len(data)
            if size > TUNNEL_REQUEST_MAX:
                raise Refused("too_large", f"request body over {TUNNEL_REQUEST_MAX} bytes")
            parts.append(data)
            self._granted(tid, entry, len(data))
            more = not eof
        return b"".join(parts)

    async def _http_tunnel(self, tid: str, entry: _Open, frame: dict[str, Any]) -> None:
        miner, method, path, query = self._target(frame)
        headers = self._request_headers(frame.get("headers", []))
        port = http_port(miner.info.driver, miner.info.port, miner.info.ports)
        address = check_target(miner.info.host, port, self.allow)
        body = await self._body(tid, entry, frame)
        try:
            credentials = open_credentials(
                miner, node_key=self.node.node_key, node_id=self.node.node_id
            )
        except AssignmentError as exc:
            raise Refused("auth_failed", str(exc)) from None
        path_qs = path + (f"?{query}" if query else "")
        if miner.info.driver == "antminer":
            url = f"{miner.info.scheme or 'http'}://{host_for_url(address)}:{port}"
            reply = await self._digest(miner, credentials, url, method, path_qs, headers, body)
        else:
            reply = await self._bearer(miner, credentials, address, method, path_qs, headers, body)
        async with reply:
            await self._respond(tid, entry, reply)

    async def _bearer(
        self,
        miner: AssignedMiner,
        credentials: Credentials | None,
        address: str,
        method: str,
        path_qs: str,
        headers: dict[str, str],
        body: bytes,
    ) -> aiohttp.ClientResponse:
        """ProtoOS: the bearer token of the shared cache; one renewal on a 401."""
        driver = self.node.registry.get(miner.info.driver)
        tokens = getattr(driver, "tokens", None)
        client = ProtoOSClient(
            shared_http(),
            tokens if isinstance(tokens, TokenCache) else TokenCache(1),
            miner.info.host,
            miner.info.port,
            scheme=miner.info.scheme or None,
            credentials=credentials,
        )
        try:
            token = await asyncio.wait_for(client.token(), TOTAL_TIMEOUT_S)
            reply = await self._send(client, address, method, path_qs, headers, body, token)
            if reply.status == 401:
                reply.release()
                renewed = await client.tokens.renew(
                    client.token_key, token, client.login_grant, client.refresh_grant
                )
                reply = await self._send(
                    client, address, method, path_qs, headers, body, renewed.access
                )
                if reply.status == 401:
                    reply.release()
                    raise Refused("auth_failed", "the miner refused the renewed token")
        except AuthFailed as exc:
            raise Refused("auth_failed", str(exc)) from None
        except Unreachable:
            raise
        except MinerError as exc:
            raise Refused("auth_failed", f"the miner refused the login: {exc}") from None
        return reply

    async def _digest(
        self,
        miner: AssignedMiner,
        credentials: Credentials | None,
        base: str,
        method: str,
        path_qs: str,
        headers: dict[str, str],
        body: bytes,
    ) -> aiohttp.ClientResponse:
        """Stock Antminer: HTTP Digest with the credentials the node holds (the firmware's
        root/root when it holds none), as the server's proxy does (``proxy.antminer``)."""
        from yarl import URL

        creds = credentials or Credentials(password=DEFAULT_PASSWORD, username=DEFAULT_USER)

        def send(auth: str | None) -> Awaitable[aiohttp.ClientResponse]:
            sent = {**headers, "Authorization": auth} if auth else dict(headers)
            return self._session().request(
                method,
                URL(base + path_qs, encoded=True),
                headers=sent,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            )

        def remember(challenge: Challenge | None) -> None:
            self._challenges.pop(miner.miner_id, None)
            if challenge is not None:
                while len(self._challenges) >= MAX_CHALLENGES:
                    self._challenges.pop(next(iter(self._challenges)))
                self._challenges[miner.miner_id] = challenge

        try:
            return await digest.exchange(
                send,
                self._challenges.get(miner.miner_id),
                creds.username or DEFAULT_USER,
                creds.password,
                method,
                path_qs,
                remember,
            )
        except AuthFailed as exc:
            raise Refused("auth_failed", str(exc)) from None

    async def _send(
        self,
        client: ProtoOSClient,
        address: str,
        method: str,
        path_qs: str,
        headers: dict[str, str],
        body: bytes,
        token: str,
    ) -> aiohttp.ClientResponse:
        from yarl import URL

        url = f"{client.scheme or 'http'}://{host_for_url(address)}:{client.port}{path_qs}"
        return await self._session().request(
            method,
            URL(url, encoded=True),
            headers={**headers, "Authorization": f"Bearer {token}"},
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )

    async def _respond(self, tid: str, entry: _Open, reply: aiohttp.ClientResponse) -> None:
        if (reply.content_length or 0) > TUNNEL_RESPONSE_MAX:
            raise Refused("too_large", f"the miner's response is over {TUNNEL_RESPONSE_MAX} bytes")
        pairs = [
            [name.lower(), value]
            for name, value in reply.headers.items()
            if name.lower() not in RESPONSE_DROPPED and name.lower() != "location"
        ][: TUNNEL_HEADERS_MAX - 2]
        location = reply.headers.get("location")
        if location:
            here = str(reply.url)
            target = urlsplit(urljoin(here, location))
            if (target.scheme, target.netloc) != (urlsplit(here).scheme, urlsplit(here).netloc):
                raise Refused("refused", "the miner redirected off itself")
            pairs.append(["location", target.path + (f"?{target.query}" if target.query else "")])
        if reply.content_length is not None:
            pairs.append(["content-length", str(reply.content_length)])
        self.send({"type": "tunnel_response", "id": tid, "status": reply.status, "headers": pairs})
        sent = 0
        async for chunk in reply.content.iter_chunked(TUNNEL_CHUNK):
            sent += len(chunk)
            if sent > TUNNEL_RESPONSE_MAX:
                raise Refused("too_large", f"the miner's response is over {TUNNEL_RESPONSE_MAX}")
            await self._write(tid, entry, chunk)
        await self._write(tid, entry, b"", eof=True)

    # --- TCP ------------------------------------------------------------------------------
    def _stream_target(self, frame: dict[str, Any]) -> tuple[str, int]:
        host, port = frame.get("host"), frame.get("port")
        if not isinstance(host, str) or len(host) > 64:
            raise Refused("refused", "host is not an address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise Refused("refused", "port is not 1-65535")
        address = _address(host)
        if self.allow.allows(address, port):
            return str(address), port
        miner_hosts = {m.info.host for m in self.node.assignment.miners.values()}
        if port == SSH_PORT and (host in miner_hosts or str(address) in miner_hosts):
            return check_target(str(address), port, self.allow), port
        raise Refused(
            "refused",
            f"{address}:{port} is not an assigned miner's SSH port nor in {ALLOW_ENV}",
        )

    async def _tcp_tunnel(self, tid: str, entry: _Open, frame: dict[str, Any]) -> None:
        host, port = self._stream_target(frame)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), STREAM_CONNECT_TIMEOUT_S
        )
        self.send({"type": "tunnel_opened", "id": tid})

        async def up() -> None:  # the target → the server, within its credit
            while chunk := await reader.read(TUNNEL_CHUNK):
                await self._write(tid, entry, chunk)
            await self._write(tid, entry, b"", eof=True)

        async def down() -> None:  # the server → the target; granted once written out
            while True:
                data, eof = await self._read(tid, entry)
                if data:
                    writer.write(data)
                    await writer.drain()
                    self._granted(tid, entry, len(data))
                if eof:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return

        try:
            pumps = [asyncio.create_task(up()), asyncio.create_task(down())]
            try:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()
                if not all(task.done() for task in pumps):
                    await asyncio.gather(*pumps)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
