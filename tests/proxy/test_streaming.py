"""A large log download passes through the proxy as it arrives, never buffered whole.

The rig-shaped server sends half of a 48 MiB log and then waits until the browser has
received bytes: a proxy that buffered the body would never send any, and the download would
stall. The bytes in flight between the rig and the browser (sent by the rig, not yet received
by the browser) stay far below the body size the whole time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from fleet.models import Miner
from tests.conftest import OrgWorld
from tests.proxy.conftest import add_loopback_proto, browser_for
from tests.proxy.support import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True)]
PIECE = 64 * 1024
TOTAL = 48 * 1024 * 1024
IN_FLIGHT_BOUND = 12 * 1024 * 1024  # socket buffers + aiohttp's read buffer + one chunk


class SlowLog(LoopbackServer):
    """``GET /api/v1/system/logs``: half the log, then the rest once the browser has some."""

    def __init__(self) -> None:
        self.written = 0
        self.received = 0
        self.peak_in_flight = 0
        self.browser_has_bytes = asyncio.Event()
        app = web.Application()
        app.router.add_post("/api/v1/auth/login", self.login)
        app.router.add_get("/api/v1/system/logs", self.logs)
        super().__init__(app)

    async def login(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "log-token", "refresh_token": "r"})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = TOTAL
        await response.prepare(request)
        for index in range(TOTAL // PIECE):
            if index == TOTAL // PIECE // 2:
                await asyncio.wait_for(self.browser_has_bytes.wait(), 20)
            await response.write(b"L" * PIECE)
            self.written += PIECE
            self.peak_in_flight = max(self.peak_in_flight, self.written - self.received)
        await response.write_eof()
        return response

    async def browser_got(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.received += len(message["body"])
            self.browser_has_bytes.set()


@pytest.fixture
async def slow_log(org_a: OrgWorld, loopback_allowed: None) -> AsyncIterator[tuple[SlowLog, Miner]]:
    server = SlowLog()
    await server.start()
    yield server, await sync_to_async(add_loopback_proto)(org_a, server.port, "slow-log")
    await server.runner.cleanup()


async def test_a_large_log_is_passed_on_as_it_arrives(
    slow_log: tuple[SlowLog, Miner], org_a: OrgWorld
) -> None:
    server, miner = slow_log
    tech = await browser_for(org_a.users["field_tech"])
    reply = await asyncio.wait_for(
        tech.call(
            "GET", f"/api-proxy/miners/{miner.pk}/api/v1/system/logs", on_send=server.browser_got
        ),
        60,
    )
    assert reply.status == 200
    assert len(reply.body) == TOTAL and reply.header("content-length") == str(TOTAL)
    assert reply.chunks >= TOTAL // (64 * 1024)  # 64 KiB chunks, as they came
    assert server.peak_in_flight < IN_FLIGHT_BOUND, server.peak_in_flight
