"""Fixtures for tests that talk to simulated miners over loopback.

`sim_fleet` is a factory: `fleet = await sim_fleet(proto=1, antminer=1, password="s3cretpw")`.
Fleets run on wall time unless given `clock=clock` (the `clock` fixture, a `ManualClock`): then
simulated time only moves with `clock.advance(seconds)`, reboots included.
Every fleet gets its own 127.x.y.0/24 so tests can run in parallel (pytest-xdist workers and
separate pytest sessions alike) on the real ports; non-root runs shift ports by 20000.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from miners.sim import Clock, FleetSpec, ManualClock, SimFleet

PORT_OFFSET = 0 if os.geteuid() == 0 else 20000
TEST_DEFAULTS: dict[str, Any] = {"stats_delay": 0.0, "reboot_downtime": 0.3, "seed": 1}
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_counter = itertools.count(os.getpid() % 256)  # concurrent sessions start at different blocks

SimFleetFactory = Callable[..., Awaitable[SimFleet]]


def _base() -> str:
    """A /24 per fleet: second octet from the xdist worker, third from a per-process counter
    (an address still in use by another session is skipped by the retry in `sim_fleet`)."""
    n = next(_counter)
    return f"127.{100 + (_WORKER + n // 256) % 150}.{n % 256}.1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim_fleet() -> AsyncIterator[SimFleetFactory]:
    fleets: list[SimFleet] = []

    async def start(*, clock: Clock | None = None, **overrides: Any) -> SimFleet:
        options = {**TEST_DEFAULTS, "port_offset": PORT_OFFSET, **overrides}
        fixed_base = options.pop("base", None)
        for _attempt in range(8):
            fleet = SimFleet(FleetSpec(base=fixed_base or _base(), **options), clock=clock)
            try:
                await fleet.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or fixed_base:
                    raise
                continue
            fleets.append(fleet)
            return fleet
        raise RuntimeError("no free loopback block for a simulated fleet")

    yield start
    for fleet in fleets:
        await fleet.stop()


# -- raw protocol clients (deliberately independent of the drivers in miners/) ---------------


class ProtoClient:
    """Plain aiohttp calls to one ProtoOS rig; remembers the last access token."""

    def __init__(self, http: aiohttp.ClientSession, entry: dict[str, Any], https: bool) -> None:
        self.http = http
        self.entry = entry
        scheme, port = (
            ("https", entry["ports"]["https"]) if https else ("http", entry["ports"]["http"])
        )
        self.base = f"{scheme}://{entry['host']}:{port}"
        self.token: str | None = None

    async def login(self, password: str | None = None) -> str:
        status, body = await self.call(
            "POST", "/api/v1/auth/login", json={"password": password or self.entry["password"]}
        )
        assert status == 200, body
        self.token = body["access_token"]
        return body["access_token"]

    async def call(
        self, method: str, path: str, *, token: str | None = None, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token or (self.token if auth else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with self.http.request(
            method, self.base + path, headers=headers, ssl=False, **kwargs
        ) as resp:
            raw = await resp.read()
            if resp.content_type == "application/json" and raw:
                return resp.status, json.loads(raw)
            return resp.status, raw.decode(errors="replace")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def proto(http: aiohttp.ClientSession) -> Callable[..., ProtoClient]:
    def make(entry: dict[str, Any], https: bool = False) -> ProtoClient:
        return ProtoClient(http, entry, https)

    return make


async def rpc_raw(host: str, port: int, payload: bytes, half_close: bool = False) -> bytes:
    """Send one CGMiner request and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        if half_close:
            writer.write_eof()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def rpc(entry: dict[str, Any], command: str, parameter: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"command": command}
    if parameter is not None:
        request["parameter"] = parameter
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], json.dumps(request).encode())
    assert raw.endswith(b"\x00"), raw[-20:]
    return json.loads(raw[:-1])


def digest_header(
    method: str, uri: str, challenge: str, password: str, user: str = "root", nc: str = "00000001"
) -> str:
    """RFC 7616 MD5 / qop=auth response, written out by hand for the tests."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm, nonce = fields["realm"], fields["nonce"]
    cnonce = "0a4f113b"
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'algorithm=MD5, response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


async def antminer_web(
    http: aiohttp.ClientSession,
    entry: dict[str, Any],
    method: str,
    path: str,
    password: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    """Challenge, then answer it: two requests, like a browser."""
    url = f"http://{entry['host']}:{entry['ports']['http']}{path}"
    async with http.request(method, url) as first:
        await first.read()
        if first.status != 401:
            return first.status, None
        challenge = first.headers["WWW-Authenticate"]
    header = digest_header(method, path, challenge, password or entry["password"])
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, headers={"Authorization": header}, data=data) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text
