"""The control stream: one outbound WebSocket to the server, kept up while the node runs.

Per connection: ``hello`` → ``welcome`` → heartbeats, buffered telemetry (oldest first, a
small window of unacknowledged batches), acks of commands; the read loop hands commands to
the dispatcher. Between connections: exponential backoff with full jitter; a fresh session
right away after 4401 (once); the server's delay after ``goaway``; a planned reconnect with a
new session shortly before the current one expires. 4403 (revoked) stops the node.

Every server frame is untrusted: ``parse_frame`` bounds and types it, a bad one is logged and
counted, and nothing the server sends can crash the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any

import aiohttp

from fleetnode import __version__
from fleetnode.backoff import Backoff, refused
from fleetnode.commands import Dispatcher
from fleetnode.gateway import Gateway, GatewayError, SessionToken, ssl_context, ws_url
from fleetnode.health import HostHealth
from fleetnode.node import Node
from fleetnode.protocol import (
    CLOSE_RATE_LIMITED,
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    CLOSE_UNAUTHENTICATED,
    HEARTBEAT_INTERVAL_S,
    MAX_FRAME_BYTES,
    SERVER_TO_NODE,
    ProtocolError,
    dump_frame,
    parse_frame,
)
from fleetnode.tunnel import Tunnels

log = logging.getLogger("fleetnode.client")

# A server that accepted the socket is working off a queue of hellos (a reconnect storm after a
# restart): waiting for it is cheaper for everyone than giving up and queueing a new hello.
WELCOME_TIMEOUT_S = 30.0
REFRESH_MARGIN_S = 60.0  # reconnect with a new session this long before the old one expires
ACK_WINDOW = 4  # telemetry batches in flight without a batch_ack
ACK_TIMEOUT_S = 30.0
MAX_OUTBOX = 1000  # acks waiting for a connection
MAX_GOAWAY_S = 600.0
SEND_RATE_PER_S = 40.0  # the server allows 50 frames/s sustained, bursts of 200
SEND_BURST = 100.0
CLOSE_SESSION_REFRESH = 4000  # our own close when a new session takes over


class Stop(Exception):
    """The server no longer accepts this node: stop instead of retrying."""


class Client:
    def __init__(
        self,
        node: Node,
        *,
        gateway: Gateway | None = None,
        backoff: Backoff | None = None,
        pool_size: int = 8,
    ) -> None:
        self.node = node
        self.metrics = node.metrics
        config = node.config
        self.gateway = gateway or Gateway(config.server, ca_file=config.ca_file)
        self.url = ws_url(config.server)
        self.ssl = ssl_context(config.ca_file)
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.dispatcher = Dispatcher(node, self.send, pool_size=pool_size)
        self.tunnels = Tunnels(node, self._send_now)  # frames of this connection only
        self.dispatcher.disconnected()  # until the first welcome
        self.health = HostHealth(node.state.dir)
        self.token: SessionToken | None = None
        self.outbox: deque[str] = deque()
        self.wire: deque[str] = deque()  # this connection only: heartbeats, telemetry
        self.wakeup = asyncio.Event()
        self.batch_ready = asyncio.Event()
        self.batch_acked = asyncio.Event()
        self.inflight: set[int] = set()
        self.stopping = asyncio.Event()
        self.goaway_s: float | None = None
        self.heartbeat_s = float(HEARTBEAT_INTERVAL_S)
        self.outbox_dropped = 0
        self._retried_session = False
        self._planned = False  # we closed to reconnect with a new session
        self._fatal: Stop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._status: dict[str, Any] = {"connected": False}

    # --- outgoing ------------------------------------------------------------------------
    def send(self, frame: dict[str, Any]) -> None:
        """Queue an ack (kept across reconnects; the oldest go past ``MAX_OUTBOX``, counted)."""
        self.outbox.append(dump_frame(frame))
        while len(self.outbox) > MAX_OUTBOX:
            self.outbox.popleft()
            self.outbox_dropped += 1
            self.metrics.acks_dropped.inc()
            log.warning("outbox full: an ack was dropped (%d so far)", self.outbox_dropped)
        self.wakeup.set()

    def _send_now(self, frame: dict[str, Any] | str) -> None:
        self.wire.append(frame if isinstance(frame, str) else dump_frame(frame))
        self.wakeup.set()

    async def _writer(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The one sender, paced under the server's rate limit (a backlog of acks or a
        backfill after an outage must not earn a 4429)."""
        tokens, refilled = SEND_BURST, time.monotonic()
        while True:
            while self.wire or self.outbox:
                now = time.monotonic()
                tokens = min(SEND_BURST, tokens + (now - refilled) * SEND_RATE_PER_S)
                refilled = now
                if tokens < 1:
                    await asyncio.sleep((1 - tokens) / SEND_RATE_PER_S)
                    continue
                tokens -= 1
                queue = self.wire if self.wire else self.outbox
                await ws.send_str(queue[0])
                queue.popleft()
            self.wakeup.clear()
            await self.wakeup.wait()

    # --- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Until ``stop()``; raises ``Stop`` when the server refuses this node for good."""
        first = True
        while not self.stopping.is_set():
            if not first:
                self.metrics.reconnects.inc()
            first = False
            delay = await self._attempt()
            if self._fatal is not None:
                raise self._fatal
            if delay > 0 and not self.stopping.is_set():
                log.info("reconnecting in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
        await self.dispatcher.stop()
        await self.tunnels.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()

    async def _attempt(self) -> float:
        try:
            token = await self._session()
        except GatewayError as exc:
            if exc.status in (401, 403):
                self._fatal = Stop(
                    f"the server refuses this node's api key ({exc}). It was revoked or "
                    "re-enrolled: enroll again with a new code and a fresh state directory."
                )
                return 0
            log.warning("no session: %s", exc)
            return self.backoff.next()
        if self.stopping.is_set():
            return 0
        try:
            code = await self._connect(token)
        except aiohttp.WSServerHandshakeError as exc:
            return self._handshake_refused(exc.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("control stream to %s failed: %s", self.url, exc or type(exc).__name__)
            self._record(connected=False, last_error=str(exc)[:200] or type(exc).__name__)
            return self.backoff.next_refused() if refused(exc) else self.backoff.next()
        except Exception as exc:  # a bug: log it, keep the node alive, try again later
            log.exception("control stream crashed")
            self._record(connected=False, last_error=f"node error: {type(exc).__name__}")
            return self.backoff.next()
        return self._after_close(code)

    async def _session(self) -> SessionToken:
        if self.token is None or self.token.expires_at - time.time() < REFRESH_MARGIN_S:
            self.token = await self.gateway.session(self.node.identity, api_key=self.node.api_key)
        return self.token

    def _handshake_refused(self, status: int) -> float:
        log.warning("the server refused the control-stream handshake: HTTP %s", status)
        if status == 403:
            return self._after_close(CLOSE_REVOKED)
        if status == 401:
            return self._after_close(CLOSE_UNAUTHENTICATED)
        return self.backoff.next()

    def _after_close(self, code: int) -> float:
        self.metrics.closes.labels(str(code)).inc()
        self._record(connected=False, last_close={"code": code, "at": time.time()})
        if code == CLOSE_REVOKED:
            self._fatal = Stop(
                "the server closed the control stream with 4403: this node is revoked (or no "
                "longer confirmed). Enroll it again with a new code to bring it back."
            )
            return 0
        if self.stopping.is_set():
            return 0
        if self._planned:
            self._planned = False
            return 0
        if code == CLOSE_UNAUTHENTICATED:
            self.token = None
            if not self._retried_session:
                self._retried_session = True
                log.info("session refused (4401): starting a new one")
                return 0
        if self.goaway_s is not None:
            delay, self.goaway_s = self.goaway_s, None
            log.info("server draining (close %s): back in %.1f s as it asked", code, delay)
            return delay
        if code == CLOSE_REPLACED:
            log.warning(
                "replaced by a newer connection of this node (4409): is another agent running "
                "with a copy of this state directory?"
            )
        elif code == CLOSE_RATE_LIMITED:
            log.warning("rate limited by the server (4429)")
        else:
            log.warning("control stream closed (code %s)", code)
        return self.backoff.next()

    async def _connect(self, token: SessionToken) -> int:
        headers = {
            "Authorization": f"Bearer {token.token}",
            "User-Agent": f"fleetnode/{__version__}",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                self.url,
                headers=headers,
                max_msg_size=MAX_FRAME_BYTES,
                ssl=self.ssl,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                autoping=True,
            ) as ws,
        ):
            await ws.send_str(dump_frame(self.node.hello()))
            welcome = await self._welcome(ws)
            if welcome is None:
                await ws.close()
                return ws.close_code or 1006
            tasks = [
                asyncio.create_task(self._writer(ws)),
                asyncio.create_task(self._heartbeats()),
                asyncio.create_task(self._telemetry()),
                asyncio.create_task(self._refresh(ws)),
                asyncio.create_task(self._closer(ws)),
            ]
            for task in tasks:
                task.add_done_callback(lambda done: self._task_ended(done, ws))
            self.dispatcher.connected()
            try:
                await self._read(ws)
            finally:
                self.dispatcher.disconnected()
                self.metrics.connected.set(0)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.tunnels.close_all()
                self.wire.clear()
            return ws.close_code or 1006

    def _task_ended(self, task: asyncio.Task[None], ws: aiohttp.ClientWebSocketResponse) -> None:
        """A connection's helper failed (a send on a dying socket, a bug): drop the connection
        rather than keep a half-working one; the loop reconnects."""
        if task.cancelled() or task.exception() is None:
            return
        log.warning("control stream task failed (%r); reconnecting", task.exception())
        closing = asyncio.get_running_loop().create_task(ws.close(code=1011, message=b"node error"))
        self._background.add(closing)
        closing.add_done_callback(self._background.discard)

    async def _closer(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        await self.stopping.wait()
        await ws.close(code=1001, message=b"node stopping")

    async def _welcome(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        try:
            msg = await ws.receive(timeout=WELCOME_TIMEOUT_S)
        except TimeoutError:
            log.warning("no welcome within %g s", WELCOME_TIMEOUT_S)
            return None
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None  # closed (the close code says why) or a binary frame
        try:
            frame = parse_frame(msg.data, allowed=SERVER_TO_NODE)
            if frame["type"] != "welcome":
                raise ProtocolError(f"expected welcome, got {frame['type']}")
            self._apply_welcome(frame)
        except ProtocolError as exc:
            self.metrics.bad_frames.inc()
            log.error("bad welcome from the server: %s", exc)
            return None
        return frame

    def _apply_welcome(self, frame: dict[str, Any]) -> None:
        if frame.get("node_id") != self.node.node_id:
            raise ProtocolError("welcome names another node")
        interval = frame.get("heartbeat_interval_s", HEARTBEAT_INTERVAL_S)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ProtocolError("heartbeat_interval_s is not a number")
        self.heartbeat_s = min(300.0, max(1.0, float(interval)))
        server_time = frame.get("server_time")
        if isinstance(server_time, int | float) and abs(server_time - time.time()) > 60:
            log.warning(
                "this node's clock is %.0f s off the server's: commands may be refused as "
                "expired; fix NTP",
                time.time() - server_time,
            )
        self.node.trust.welcome_keys(frame.get("command_keys"))
        seq = frame.get("telemetry_seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
            gone = self.node.buffer.server_has(seq)
            if gone:
                log.info("the server already has %d buffered batches (up to %d)", gone, seq)
        expires = frame.get("session_expires_at")
        if self.token is not None and isinstance(expires, int | float):
            self.token = SessionToken(self.token.token, min(self.token.expires_at, float(expires)))
        self.backoff.reset()
        self._retried_session = False
        self.metrics.connected.set(1)
        self._record(connected=True, connected_at=time.time(), last_error="")
        log.info("connected to %s as node %s", self.url, self.node.node_id)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.on_frame(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.metrics.bad_frames.inc()
                log.warning("ignoring a binary frame from the server")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                log.warning("control stream error: %s", ws.exception())
                break

    def on_frame(self, text: str) -> None:
        """One frame from the server. Never raises."""
        try:
            frame = parse_frame(text, allowed=SERVER_TO_NODE)
        except ProtocolError as exc:
            self.metrics.bad_frames.inc()
            log.warning("ignoring a bad frame from the server: %s", exc)
            return
        kind = frame["type"]
        if kind == "command":
            self.dispatcher.handle(frame)
        elif kind == "batch_ack":
            self._batch_ack(frame)
        elif kind == "goaway":
            delay = frame.get("reconnect_after_ms")
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                delay = 0
            self.goaway_s = min(MAX_GOAWAY_S, float(delay) / 1000.0)
            log.info("goaway: the server will close; reconnecting after %.1f s", self.goaway_s)
        elif kind.startswith("tunnel_"):
            self.tunnels.handle(frame)
        elif kind == "welcome":
            log.warning("ignoring a second welcome")
        else:
            log.debug("ignoring %s (not supported by this agent)", kind)

    # --- heartbeats ------------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        while True:
            now = time.time()
            self._send_now(
                {
                    "type": "heartbeat",
                    "ts": now,
                    "health": self.health.read(),
                    "agent_version": __version__,
                }
            )
            self.metrics.last_heartbeat.set(now)
            self._record(last_heartbeat_at=now)
            await asyncio.sleep(self.heartbeat_s)

    # --- telemetry -------------------------------------------------------------------------
    def telemetry_added(self) -> None:
        self.metrics.batches_buffered.set(len(self.node.buffer))
        self.metrics.batches_dropped.set(self.node.buffer.dropped)
        self.batch_ready.set()

    def _batch_ack(self, frame: dict[str, Any]) -> None:
        if "command_id" in frame:
            self.dispatcher.batch_ack(frame)  # a discovery batch's ack
            return
        seq = frame.get("batch_seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            self.metrics.bad_frames.inc()
            log.warning("ignoring a batch_ack without an integer batch_seq")
            return
        if self.node.buffer.ack(seq):
            self.metrics.batches_acked.inc()
        dropped = frame.get("dropped")
        if isinstance(dropped, int) and not isinstance(dropped, bool) and dropped > 0:
            log.warning(
                "the server dropped %d outcomes of batch %d (miners not on this node?)",
                dropped,
                seq,
            )
        self.inflight.discard(seq)
        self.metrics.batches_buffered.set(len(self.node.buffer))
        self.batch_acked.set()

    async def _telemetry(self) -> None:
        self.inflight.clear()
        while True:
            self.batch_ready.clear()
            await self._send_pending()
            await self.batch_ready.wait()

    async def _send_pending(self) -> None:
        for seq in self.node.buffer.pending():
            if seq in self.inflight:
                continue
            while len(self.inflight) >= ACK_WINDOW:
                self.batch_acked.clear()
                try:
                    await asyncio.wait_for(self.batch_acked.wait(), ACK_TIMEOUT_S)
                except TimeoutError:
                    log.warning(
                        "no batch_ack within %g s: re-sending from the oldest", ACK_TIMEOUT_S
                    )
                    self.inflight.clear()
                    self.batch_ready.set()
                    return
            if seq not in self.node.buffer.pending():
                continue  # acknowledged (or dropped) while we waited
            text = self.node.buffer.load(seq)
            if text is None:
                continue
            self.inflight.add(seq)
            self._send_now(text)
            self.metrics.batches_sent.inc()

    # --- sessions ---------------------------------------------------------------------------
    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Shortly before the session expires: a new session, then a reconnect with it."""
        assert self.token is not None
        while True:
            wait = self.token.expires_at - time.time() - REFRESH_MARGIN_S
            await asyncio.sleep(max(0.0, wait - random.uniform(0, min(30.0, max(0.0, wait) / 4))))
            try:
                self.token = await self.gateway.session(
                    self.node.identity, api_key=self.node.api_key
                )
            except GatewayError as exc:
                if exc.status in (401, 403):
                    self._fatal = Stop(f"the server refuses this node's api key ({exc})")
                    await ws.close(code=1000, message=b"node stopping")
                    return
                log.warning("session refresh failed (%s); retrying", exc)
                await asyncio.sleep(min(10.0, max(1.0, self.token.expires_at - time.time())))
                continue
            log.info("new session; reconnecting with it")
            self._planned = True
            await ws.close(code=CLOSE_SESSION_REFRESH, message=b"session refresh")
            return

    # --- status -----------------------------------------------------------------------------
    def _record(self, **fields: Any) -> None:
        self._status.update(fields)
        status = {
            **self._status,
            "buffered": len(self.node.buffer),
            "dropped": self.node.buffer.dropped,
            "miners": len(self.node.assignment.miners),
            "agent_version": __version__,
        }
        try:
            self.node.state.set_status(status)
        except OSError as exc:
            log.warning("can't write status.json: %s", exc)
