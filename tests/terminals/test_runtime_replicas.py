"""Two daphne processes sharing PostgreSQL and Redis: a session lives in the replica that
started it; a reattach that reaches the other replica is refused with 4409 (and leaves the
session untouched), and a reattach routed to the owner replays exactly what was missed."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from accounts.actor import Actor
from terminals.models import SessionState, TerminalSession
from terminals.services.sessions import session_open
from tests.conftest import OrgWorld
from tests.fleet.nodes.live import servers
from tests.fleet.test_live import session_headers
from tests.terminals.conftest import Sshd
from tests.terminals.test_sessions import add_host

__all__ = ["servers"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def loopback(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")  # for the daphne processes


class Viewer:
    """A browser's side of ``/ws/terminals/{id}/`` over a real socket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen = bytearray()
        self.seq = 0

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def event(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), 30)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, self.ws.close_code)
        value: dict[str, Any] = json.loads(msg.data)
        return value

    async def until(self, needle: bytes) -> None:
        async with asyncio.timeout(20):
            while needle not in self.seen:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY, (msg.type, self.ws.close_code)
                start = struct.unpack(">Q", msg.data[:8])[0]
                assert start == self.seq, (start, self.seq)  # no gap, no repeat
                self.seen += msg.data[8:]
                self.seq = start + len(msg.data) - 8
                await self.send(type="ack", seq=self.seq)

    async def closed(self) -> int | None:
        async with asyncio.timeout(20):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return self.ws.close_code


async def test_reattach_reaches_the_owner_only(
    org_a: OrgWorld, sshd: Sshd, servers: Callable[[], str]
) -> None:
    first, second = servers(), servers()
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    cookie = dict(await sync_to_async(session_headers)(user))[b"cookie"].decode()

    async with aiohttp.ClientSession() as http:

        async def connect(base: str) -> Viewer:
            url = base.replace("http://", "ws://") + f"/ws/terminals/{row.pk}/"
            ws = await http.ws_connect(url, headers={"Origin": base, "Cookie": cookie})
            return Viewer(ws)

        owner = await connect(first)
        await owner.send(type="attach", last_seq=0)
        assert (await owner.event())["type"] == "attached"
        await owner.send(type="input", data="echo one-$((1+1)); sleep 1; echo two-$((2+2))\n")
        await owner.until(b"one-2")
        seq = owner.seq
        await owner.ws.close()  # the page reloads; "two" arrives while nobody watches

        claimed = await sync_to_async(TerminalSession.unscoped.get)(pk=row.pk)
        assert claimed.replica and claimed.state in (SessionState.ATTACHED, SessionState.DETACHED)

        elsewhere = await connect(second)
        await elsewhere.send(type="attach", last_seq=seq)
        assert await elsewhere.closed() == 4409
        after = await sync_to_async(TerminalSession.unscoped.get)(pk=row.pk)
        assert after.replica == claimed.replica and after.state != SessionState.CLOSED

        back = await connect(first)
        back.seq = seq
        await back.send(type="attach", last_seq=seq)
        event = await back.event()
        assert event["type"] == "attached" and event["seq"] == seq and event["missed"] == 0
        await back.until(b"two-4")
        await back.send(type="input", data="exit\n")
        assert await back.closed() == 1000
