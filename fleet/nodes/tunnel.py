"""Tunnels through a fleet node's control stream (docs/protocol.md, "Tunnels").

Two halves, usually in different processes:

- ``Relay`` lives in the consumer that holds the node's socket. It forwards a tunnel's frames
  to the node and the node's answers back to the tunnel's reply channel, and nothing else: it
  knows which reply channel each open tunnel of its connection answers to (bounded).
- ``TunnelEnd`` lives wherever a caller opened the tunnel (a proxy request, a terminal), in
  any replica. The opening frame goes to the node's channel-layer group; the relay that takes
  it answers with its own channel (``via``) and every later frame goes there directly.

Flow control is by credit, each way: a sender has ``TUNNEL_WINDOW`` bytes of data outstanding
at most and the receiver grants more (``tunnel_window``) as it consumes, so no buffer on the
way grows past one window per tunnel. A caller that goes away closes its tunnel
(``tunnel_close`` ``cancelled``); the node stops the request or the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from fleet.nodes.commands import node_group
from fleet.nodes.metrics import MESSAGES
from fleetnode import protocol
from fleetnode.protocol import (
    TUNNEL_CHUNK,
    TUNNEL_HEADERS_MAX,
    TUNNEL_MAX_FRAMES,
    TUNNEL_MAX_OPEN,
    TUNNEL_WINDOW,
    ProtocolError,
    tunnel_close,
    tunnel_data,
    tunnel_data_bytes,
    tunnel_id,
    tunnel_window_bytes,
)

ROUTE_TIMEOUT_S = 5.0  # the node's relay must take a new tunnel within this
OPEN_TIMEOUT_S = 10.0  # a TCP stream must be connected on the node within this
OPENING = frozenset({"tunnel_request", "tunnel_open"})


class TunnelError(Exception):
    """The tunnel ended before it was done: ``reason`` is a ``TUNNEL_REASONS`` word."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason if reason in protocol.TUNNEL_REASONS else "error"
        self.message = message or reason


# --- the consumer's half --------------------------------------------------------------------
class Relay:
    """Routes of one node connection: tunnel id → the reply channel of its ``TunnelEnd``."""

    def __init__(self, layer: Any, channel: str, enqueue: Callable[[dict[str, Any]], bool]) -> None:
        self.layer = layer
        self.channel = channel
        self.enqueue = enqueue
        self.routes: dict[str, str] = {}

    async def _answer(self, reply: str, frame: dict[str, Any] | None) -> None:
        with contextlib.suppress(ChannelFull):
            await self.layer.send(
                reply, {"type": "tunnel.frame", "frame": frame, "via": self.channel}
            )

    async def to_node(self, event: dict[str, Any]) -> None:
        """A frame a ``TunnelEnd`` sent (``node.tunnel``): on to the node when it is ours."""
        frame = event.get("frame")
        reply = str(event.get("reply_to") or "")
        if not isinstance(frame, dict) or not reply:
            return
        tid, kind = str(frame.get("id")), str(frame.get("type"))
        if kind in OPENING:
            if tid in self.routes:
                return
            if len(self.routes) >= TUNNEL_MAX_OPEN:
                busy = f"the node has {TUNNEL_MAX_OPEN} tunnels open"
                await self._answer(reply, tunnel_close(tid, "busy", busy))
                return
            self.routes[tid] = reply
            await self._answer(reply, None)  # routed: later frames come straight here
        elif tid not in self.routes:
            return  # another connection's tunnel (a replaced one), or already closed
        if kind == "tunnel_close":
            self.routes.pop(tid, None)
        if not self.enqueue(frame) and kind != "tunnel_close":
            self.routes.pop(tid, None)
            await self._answer(reply, tunnel_close(tid, "busy", "the node's queue is full"))

    async def from_node(self, node_id: int, msg: dict[str, Any]) -> None:
        """A ``tunnel_*`` frame from the node: to the tunnel's end, or dropped and counted."""
        from fleet.nodes import stream

        tid = tunnel_id(msg)
        kind = str(msg["type"])
        reply = self.routes.get(tid)
        if reply is None or kind not in protocol.TUNNEL_TYPES or kind in OPENING:
            if kind != "tunnel_close":  # both ends closing at once is normal
                await database_sync_to_async(stream.report_dropped)(node_id, "tunnel_unknown")
            return
        if kind == "tunnel_close":
            self.routes.pop(tid, None)
        try:
            await self.layer.send(
                reply, {"type": "tunnel.frame", "frame": msg, "via": self.channel}
            )
        except ChannelFull:
            self.routes.pop(tid, None)
            self.enqueue(tunnel_close(tid, "busy", "the server's end is not reading"))

    async def close_all(self, reason: str, error: str) -> None:
        routes, self.routes = self.routes, {}
        for tid, reply in routes.items():
            await self._answer(reply, tunnel_close(tid, reason, error))


# --- the caller's half ----------------------------------------------------------------------
class TunnelEnd:
    """One tunnel as its opener sees it: frames in (a pump task), frames out, credit."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.id = uuid.uuid4().hex
        layer = get_channel_layer()
        assert layer is not None
        self.layer = layer
        self.reply = ""
        self.via: str | None = None
        self.routed = asyncio.Event()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.credit = TUNNEL_WINDOW
        self.frames = 0  # data frames sent and not granted back yet
        self.credit_changed = asyncio.Event()
        self.ended: TunnelError | None = None
        self.pump: asyncio.Task[None] | None = None

    async def start(self, frame: dict[str, Any]) -> None:
        self.reply = await self.layer.new_channel("fleetnode.tunnel.")
        self.pump = asyncio.create_task(self._pump())
        await self.layer.group_send(
            node_group(self.node_id),
            {"type": "node.tunnel", "frame": frame, "reply_to": self.reply},
        )
        MESSAGES.labels("out", "tunnel").inc()
        try:
            await asyncio.wait_for(self.routed.wait(), ROUTE_TIMEOUT_S)
        except TimeoutError:
            self.ended = TunnelError("node_offline", "the node is not connected")
        if self.ended is not None:
            raise self.ended

    def _end(self, error: TunnelError) -> None:
        if self.ended is None:
            self.ended = error
        self.routed.set()
        self.credit_changed.set()

    async def _pump(self) -> None:
        try:
            while True:
                message = await self.layer.receive(self.reply)
                via, frame = message.get("via"), message.get("frame")
                if isinstance(via, str) and self.via is None:
                    self.via = via
                    self.routed.set()
                if not isinstance(frame, dict):
                    continue
                kind = frame.get("type")
                if kind == "tunnel_window":
                    self.credit += tunnel_window_bytes(frame)
                    self.frames = max(0, self.frames - 1)
                    self.credit_changed.set()
                elif kind == "tunnel_close":
                    reason = str(frame.get("reason", "error"))
                    self._end(TunnelError(reason, str(frame.get("error", ""))[:500]))
                    self.inbox.put_nowait(frame)
                    return
                else:
                    self.inbox.put_nowait(frame)
        except ProtocolError as exc:
            self._end(TunnelError("error", f"bad frame from the node: {exc}"))
            self.inbox.put_nowait(tunnel_close(self.id, "error", str(exc)))

    async def next(self, timeout: float | None) -> dict[str, Any]:
        """The node's next frame; its ``tunnel_close`` (or a timeout) as a ``TunnelError``."""
        if self.ended is not None and self.inbox.empty():
            raise self.ended
        try:
            frame = await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            self._end(TunnelError("timeout", "the node did not answer in time"))
            raise TunnelError("timeout", "the node did not answer in time") from None
        if frame.get("type") == "tunnel_close":
            raise self.ended or TunnelError("error")
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        if self.ended is not None:
            raise self.ended
        assert self.via is not None
        try:
            await self.layer.send(
                self.via, {"type": "node.tunnel", "frame": frame, "reply_to": self.reply}
            )
        except ChannelFull:
            self._end(TunnelError("busy", "the node's connection is not keeping up"))
            raise TunnelError("busy", "the node's connection is not keeping up") from None

    async def write(self, data: bytes) -> None:
        """Data to the node, within the credit it granted (waits for more: backpressure)."""
        view = memoryview(data)
        while view:
            while (self.credit <= 0 or self.frames >= TUNNEL_MAX_FRAMES) and self.ended is None:
                self.credit_changed.clear()
                await self.credit_changed.wait()
            if self.ended is not None:
                raise self.ended
            size = min(len(view), TUNNEL_CHUNK, self.credit)
            self.credit -= size
            self.frames += 1
            await self.send(tunnel_data(self.id, bytes(view[:size])))
            view = view[size:]

    async def grant(self, size: int) -> None:
        if size > 0 and self.ended is None:
            await self.send({"type": "tunnel_window", "id": self.id, "bytes": size})

    async def close(self, reason: str = "cancelled", error: str = "") -> None:
        """Tell the node (unless it ended the tunnel itself) and stop the pump."""
        if self.ended is None:
            self._end(TunnelError(reason, error))
            frame = tunnel_close(self.id, reason, error)
            with contextlib.suppress(Exception):
                if self.via is not None:
                    await self.layer.send(
                        self.via, {"type": "node.tunnel", "frame": frame, "reply_to": self.reply}
                    )
                else:
                    await self.layer.group_send(
                        node_group(self.node_id),
                        {"type": "node.tunnel", "frame": frame, "reply_to": self.reply},
                    )
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump


# --- HTTP through the node --------------------------------------------------------------------
@dataclass
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    end: TunnelEnd
    deadline: float
    done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the node sends it; each chunk is granted back once the caller took it."""
        while not self.done:
            frame = await self.end.next(max(0.0, self.deadline - time.monotonic()))
            if frame.get("type") != "tunnel_data":
                raise TunnelError("error", f"unexpected {str(frame.get('type'))[:40]} in a body")
            data = tunnel_data_bytes(frame)
            self.done = frame.get("eof") is True
            if data:
                yield data
                if not self.done:
                    await self.end.grant(len(data))


def _headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or len(raw) > TUNNEL_HEADERS_MAX:
        raise TunnelError("error", "tunnel_response.headers: a short list of [name, value]")
    pairs = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, str) and len(part) <= 8192 for part in item)
            or any(c in item[0] + item[1] for c in "\r\n\x00")
        ):
            raise TunnelError("error", "tunnel_response.headers: [name, value] strings")
        pairs.append((item[0].lower(), item[1]))
    return pairs


@contextlib.asynccontextmanager
async def http_request(
    node_id: int,
    *,
    miner_id: int,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
) -> AsyncIterator[HttpReply]:
    """One HTTP exchange with an assigned miner, run by the node with its credentials.
    Leaving the block early (an error, a cancelled caller) cancels it on the node."""
    deadline = time.monotonic() + timeout
    end = TunnelEnd(node_id)
    first, rest = body[:TUNNEL_CHUNK], body[TUNNEL_CHUNK:]
    reply: HttpReply | None = None
    try:
        await end.start(
            {
                "type": "tunnel_request",
                "id": end.id,
                "miner_id": miner_id,
                "method": method,
                "path": path,
                "query": query,
                "headers": [[k, v] for k, v in headers.items()],
                "body": protocol.b64encode(first),
                "more": bool(rest),
            }
        )
        while rest:
            chunk, rest = rest[:TUNNEL_CHUNK], rest[TUNNEL_CHUNK:]
            await end.send(tunnel_data(end.id, chunk, eof=not rest))
        frame = await end.next(max(0.0, deadline - time.monotonic()))
        status = frame.get("status")
        if (
            frame.get("type") != "tunnel_response"
            or isinstance(status, bool)
            or not isinstance(status, int)
            or not 100 <= status <= 599
        ):
            raise TunnelError("error", "the node's answer is not a tunnel_response")
        reply = HttpReply(status, _headers(frame.get("headers")), end, deadline)
        yield reply
    finally:
        if reply is not None and reply.done:
            await end.close("done")
        else:
            await end.close("cancelled")


# --- TCP streams through the node -------------------------------------------------------------
class Stream:
    """A TCP connection the node made for us; ``read`` returns b"" at the end."""

    def __init__(self, end: TunnelEnd) -> None:
        self.end = end
        self.eof = False

    async def read(self) -> bytes:
        if self.eof:
            return b""
        try:
            frame = await self.end.next(None)
        except TunnelError:
            self.eof = True
            return b""
        data = tunnel_data_bytes(frame) if frame.get("type") == "tunnel_data" else b""
        if frame.get("eof") is True:
            self.eof = True
        if data:
            await self.end.grant(len(data))  # consumed: the node may send this much more
        return data

    async def write(self, data: bytes) -> None:
        await self.end.write(data)

    async def close(self) -> None:
        await self.end.close("done")


async def open_stream(node_id: int, host: str, port: int) -> Stream:
    """A TCP stream to ``host:port`` as the node sees it; the node's allowlist decides."""
    end = TunnelEnd(node_id)
    try:
        await end.start({"type": "tunnel_open", "id": end.id, "host": host, "port": port})
        frame = await end.next(OPEN_TIMEOUT_S)
        if frame.get("type") != "tunnel_opened":
            raise TunnelError("error", "the node's answer is not tunnel_opened")
    except BaseException:
        await end.close("cancelled")
        raise
    return Stream(end)


_splices: set[asyncio.Task[None]] = set()


async def open_socket(node_id: int, host: str, port: int) -> socket.socket:
    """``open_stream`` as a connected non-blocking socket (one end of a socket pair), for
    libraries that take a ``sock`` (asyncssh). Closing the socket closes the stream."""
    stream = await open_stream(node_id, host, port)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    task = asyncio.create_task(_splice(stream, ours))
    _splices.add(task)
    task.add_done_callback(_splices.discard)
    return theirs


async def _splice(stream: Stream, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()

    async def up() -> None:
        while data := await loop.sock_recv(sock, TUNNEL_CHUNK):
            await stream.write(data)

    async def down() -> None:
        while data := await stream.read():
            await loop.sock_sendall(sock, data)  # a full socket stops the reads: backpressure

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stream.close()
        sock.close()
