"""A raw WebSocket client playing the node (aiohttp): no agent code, just frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from fleetnode import protocol


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/nodes/control/"


async def open_stream(
    session: aiohttp.ClientSession, base: str, token: str | None
) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await session.ws_connect(ws_url(base), headers=headers, max_msg_size=0, autoping=True)


async def next_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
    frame: dict[str, Any] = json.loads(msg.data)
    return frame


async def close_code(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> int | None:
    """Read (and drop) frames until the server closes; its close code."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                return ws.close_code
            if msg.type == aiohttp.WSMsgType.ERROR:
                return ws.close_code


async def until(
    ws: aiohttp.ClientWebSocketResponse, frame_type: str, timeout: float = 10, **match: Any
) -> dict[str, Any]:
    """The next frame of ``frame_type`` whose fields equal ``match`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await next_frame(ws, timeout)
            if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in match.items()):
                return frame


def trusted_keys(welcome: dict[str, Any]) -> dict[str, bytes]:
    return {k["kid"]: protocol.b64decode(k["public_key"]) for k in welcome["command_keys"]}
