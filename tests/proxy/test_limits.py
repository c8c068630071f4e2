"""Limits and a hostile upstream: body caps, per-miner concurrency, timeouts, rate, redirects,
header hygiene on what a rig sends back, and a large body streamed in chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from fleet.models import Miner
from tests.conftest import OrgWorld
from tests.fleet.conftest import ThreadedFleet
from tests.proxy.conftest import add_loopback_proto, browser_for
from tests.proxy.support import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True)]
BIG = 5 * 1024 * 1024


class Rogue(LoopbackServer):
    """A rig-shaped server that misbehaves on purpose and records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak = 0
        app = web.Application()
        app.router.add_post("/api/v1/auth/login", self.login)
        app.router.add_route("*", "/api/v1/{tail:.*}", self.any)
        super().__init__(app)

    async def login(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "rogue-token", "refresh_token": "r"})

    async def any(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        tail = request.match_info["tail"]
        if tail == "off-host":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if tail == "on-host":
            raise web.HTTPFound("/api/v1/mining?x=1")
        if tail == "slow":
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.3)
            self.in_flight -= 1
            return web.json_response({"ok": True})
        if tail == "system/logs":
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            for _ in range(BIG // 65536):
                await response.write(b"x" * 65536)
            await response.write_eof()
            return response
        return web.json_response(
            {"hello": "world"},
            headers={
                "Set-Cookie": "rig=1",
                "Server": "lighttpd",
                "WWW-Authenticate": "Bearer",
                "X-Powered-By": "PHP",
                "Access-Control-Allow-Origin": "*",
                "Connection": "X-Secret",
                "X-Secret": "1",
            },
        )


@pytest.fixture
async def rogue(org_a: OrgWorld, loopback_allowed: None) -> AsyncIterator[tuple[Rogue, Miner]]:
    server = Rogue()
    await server.start()
    yield server, await sync_to_async(add_loopback_proto)(org_a, server.port, "rogue")
    await server.runner.cleanup()


def url(miner: Miner, rest: str) -> str:
    return f"/api-proxy/miners/{miner.pk}/api/v1/{rest}"


async def test_header_hygiene_both_ways(rogue: tuple[Rogue, Miner], org_a: OrgWorld) -> None:
    server, miner = rogue
    viewer = await browser_for(org_a.users["viewer"])
    reply = await viewer.call(
        "GET",
        url(miner, "mining"),
        headers={
            "Accept": "application/json",
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "Connection": "Accept-Language",
            "Accept-Language": "de",
            "X-Api-Key": "leak",
        },
    )
    assert reply.status == 200
    sent = {k.lower(): v for k, v in server.seen[-1].items()}
    assert sent["authorization"] == "Bearer rogue-token"  # ours, not the browser's
    assert "cookie" not in sent and "x-csrftoken" not in sent
    for name in ("x-forwarded-for", "forwarded", "accept-language", "x-api-key"):
        assert name not in sent
    for name in ("set-cookie", "server", "www-authenticate", "x-powered-by", "x-secret"):
        assert reply.header(name) is None, name
    assert reply.header("access-control-allow-origin") is None
    assert reply.header("cache-control") == "no-store"


async def test_redirects_are_not_followed(rogue: tuple[Rogue, Miner], org_a: OrgWorld) -> None:
    _server, miner = rogue
    viewer = await browser_for(org_a.users["viewer"])
    off = await viewer.call("GET", url(miner, "off-host"))
    assert off.status == 502 and "redirected off" in off.json()["error"]
    on = await viewer.call("GET", url(miner, "on-host"))
    assert on.status == 302
    assert on.header("location") == f"/api-proxy/miners/{miner.pk}/api/v1/mining?x=1"


async def test_a_large_log_streams_in_chunks(rogue: tuple[Rogue, Miner], org_a: OrgWorld) -> None:
    _server, miner = rogue
    operator = await browser_for(org_a.users["operator"])
    reply = await operator.call("GET", url(miner, "system/logs"))
    assert reply.status == 200 and len(reply.body) == BIG
    assert reply.chunks > 10  # passed on as it arrived, not buffered into one body


async def test_response_cap_cuts_the_stream(
    rogue: tuple[Rogue, Miner], org_a: OrgWorld, settings: Any
) -> None:
    settings.PROXY_RESPONSE_MAX_BYTES = 1024 * 1024
    _server, miner = rogue
    operator = await browser_for(org_a.users["operator"])
    with pytest.raises(ConnectionAbortedError):
        await operator.call("GET", url(miner, "system/logs"))


async def test_at_most_two_requests_per_miner(rogue: tuple[Rogue, Miner], org_a: OrgWorld) -> None:
    server, miner = rogue
    viewer = await browser_for(org_a.users["viewer"])
    started = time.monotonic()
    replies = await asyncio.gather(*(viewer.call("GET", url(miner, "slow")) for _ in range(6)))
    assert [r.status for r in replies] == [200] * 6
    assert server.peak == 2
    assert time.monotonic() - started >= 0.85  # three waves of 0.3 s


async def test_request_body_cap(proto: Miner, org_a: OrgWorld, settings: Any) -> None:
    settings.PROXY_REQUEST_MAX_BYTES = 64
    operator = await browser_for(org_a.users["operator"])
    reply = await operator.call(
        "PUT",
        f"/api-proxy/miners/{proto.pk}/api/v1/mining/target",
        body=b'{"power_target_watts": 3000, "padding": "' + b"x" * 100 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 413


async def test_a_silent_miner_is_504(
    proto: Miner, org_a: OrgWorld, rigs: ThreadedFleet, settings: Any
) -> None:
    settings.PROXY_TOTAL_TIMEOUT = 0.5
    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", f"/api-proxy/miners/{proto.pk}/api/v1/mining")).status == 200
    from proxy import upstream

    await upstream.close()  # the next session picks the shorter timeout up
    rigs.fault(proto.host, "slow", ms=2000)
    try:
        reply = await viewer.call("GET", f"/api-proxy/miners/{proto.pk}/api/v1/mining")
    finally:
        rigs.fault(proto.host, "slow", clear=True)
    assert reply.status == 504 and reply.json()["error"] == "the miner did not answer in time"


async def test_per_user_rate_limit(proto: Miner, org_a: OrgWorld, settings: Any) -> None:
    settings.PROXY_RATE_PER_MINUTE = 3
    viewer = await browser_for(org_a.users["viewer"])
    statuses = [
        (await viewer.call("GET", f"/api-proxy/miners/{proto.pk}/api/v1/system")).status
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    other = await browser_for(org_a.users["operator"])
    assert (await other.call("GET", f"/api-proxy/miners/{proto.pk}/api/v1/system")).status == 200
