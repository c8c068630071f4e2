"""``/ws/nodes/control/``: one fleet node's control stream (docs/protocol.md).

Thin: authenticate the session token, enforce the protocol's limits and close codes, hand each
frame to ``fleet.nodes.stream`` and relay what the channel layer brings (commands from any
replica, replacement by a newer connection, revocation, drain) through one bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from accounts.permissions import PUBLIC
from fleet.dbthreads import DbThreads
from fleet.models import NodeStatus
from fleet.nodes import live as node_live
from fleet.nodes import ownership, sessions, stream, tunnel
from fleet.nodes.commands import node_group
from fleet.nodes.metrics import CLOSES, MESSAGES, SOCKETS
from fleet.nodes.state import ONLINE_WITHIN
from fleetnode import protocol
from fleetnode.protocol import ProtocolError

REPLICA = f"{socket.gethostname()}:{os.getpid()}"
CLOSE_SERVER_ERROR = 1011  # RFC 6455 "internal error": the node reconnects with backoff
log = logging.getLogger(__name__)
OUT_QUEUE = 256  # frames waiting for the socket; beyond that they are dropped and counted
RATE_PER_S = 50.0  # frames per second a node may send, sustained
RATE_BURST = 200.0
RECHECK_S = 30.0
MAX_WAITERS = 1024
HEARTBEAT_WRITE_S = 5.0  # at most one heartbeat write per node per 5 s (a flood stays cheap)
# The stream's database work runs on these threads, not on the process's one thread-sensitive
# thread (which every sync view and consumer of the process queues on): session lookups,
# hellos, acks and batches of many nodes overlap. Each thread keeps its own connection
# (CONN_MAX_AGE), checked every few seconds rather than with a SELECT 1 per call
# (fleet.dbthreads). Per-node order holds: the consumer awaits each frame's work before the next.
DB_THREADS = 4
HELLO_DRAIN_S = 5.0  # a disconnect waits this long for a hello's database step to end
_DB = DbThreads("rw-node-db", lambda: DB_THREADS, sqlite_shared=False)


def db(fn: Any) -> Any:
    """``fn`` on the stream's database threads (see ``DB_THREADS``)."""
    return functools.partial(_DB.run, fn)


_HANDLERS = {
    "telemetry_batch": stream.telemetry_handle,
    "discovery_batch": stream.discovery_handle,
}


def handler_register(kind: str, handler: Any) -> None:
    """An app built on fleet (discovery) takes over a node → server frame kind: fleet never
    imports the apps above it. ``handler(node_id, msg)`` runs sync and returns a reply or None."""
    _HANDLERS[kind] = handler


def bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin1").split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                return str(parts[1])
    return None


class NodeControlConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    # A node, not a person: the session token (signed challenge) is the authentication.
    rw_permission = PUBLIC

    async def connect(self) -> None:
        self.node_id: int | None = None
        self.closing = False
        self.hello_seen = False  # the hello frame arrived (the 5 s deadline counts to this)
        self.hello_done = False  # welcome sent
        self.hello_task: asyncio.Task[None] | None = None
        # the consumer's own task: if the server kills it (no disconnect() then), a hello
        # still being worked on must notice too
        self.app_task = asyncio.current_task()
        self.tasks: list[asyncio.Task[None]] = []
        self.waiters: dict[str, str] = {}
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUT_QUEUE)
        self.tunnels = tunnel.Relay(self.channel_layer, self.channel_name, self._enqueue)
        self.tokens, self.refilled = RATE_BURST, time.monotonic()
        self.beat_written = 0.0
        self.heard = time.monotonic()  # the last heartbeat (or welcome): silence means stale
        self.revoked = False  # closed for a revoke: the revoke itself told the browsers
        # accepted before the session lookup: daphne's handshake timeout (5 s) never depends on
        # the database under a connect burst; frames wait until connect() returns
        await self.accept()
        token = bearer(self.scope)
        found = await db(sessions.session_authenticate)(token) if token else None
        if found is None:
            await self._close(protocol.CLOSE_UNAUTHENTICATED)
            return
        node, session = found
        if node.status != NodeStatus.CONFIRMED:
            await self._close(protocol.CLOSE_REVOKED)
            return
        if session.revoked_at is not None:
            await self._close(protocol.CLOSE_UNAUTHENTICATED)
            return
        self.node, self.node_id, self.org_id = node, node.pk, node.org_id
        self.session_id, self.session_expires = session.pk, session.expires_at
        await self.channel_layer.group_add(node_group(node.pk), self.channel_name)
        SOCKETS.inc()
        self.tasks = [
            asyncio.create_task(self._hello_deadline()),
            asyncio.create_task(self._session_deadline()),
            asyncio.create_task(self._recheck()),
        ]

    async def disconnect(self, code: int) -> None:
        self.closing = True  # a hello still being worked on stops at its next step
        for task in self.tasks:
            if task is not self.hello_task:
                task.cancel()
        if self.hello_task is not None and not self.hello_task.done():
            # its database step can't be cancelled (a thread): let it end (it stops at its
            # next step), so its attach never lands after the detach below
            await asyncio.wait([self.hello_task], timeout=HELLO_DRAIN_S)
        await self.tunnels.close_all("node_offline", "the node disconnected")
        if self.node_id is not None:
            SOCKETS.dec()
            await self.channel_layer.group_discard(node_group(self.node_id), self.channel_name)
            detached = await db(stream.stream_detach)(self.node_id, self.channel_name)
            if detached and self.hello_done and not self.revoked:  # not replaced: now stale
                node_live.node_status_publish(self.node, connected=False)

    def _gone(self) -> bool:
        return self.closing or (self.app_task is not None and self.app_task.done())

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            CLOSES.labels(str(code)).inc()
            await self.close(code=code)

    # --- timers ------------------------------------------------------------------------------
    async def _hello_deadline(self) -> None:
        await asyncio.sleep(protocol.HELLO_TIMEOUT_S)
        if not self.hello_seen:
            await self._close(protocol.CLOSE_HELLO_TIMEOUT)

    async def _session_deadline(self) -> None:
        left = (self.session_expires - timezone.now()).total_seconds()
        await asyncio.sleep(max(0.0, left))
        await self._close(protocol.CLOSE_UNAUTHENTICATED)

    async def _recheck(self) -> None:
        """Belt and braces for a lost revoke signal: the session and node, every 30 s."""
        while not self.closing:
            await asyncio.sleep(RECHECK_S)
            if not await db(sessions.session_alive)(self.session_id):
                self.revoked = True
                await self._close(protocol.CLOSE_REVOKED)

    async def _sender(self) -> None:
        while not self.closing:
            frame = await self.outbox.get()
            await self.send(text_data=frame)

    # --- frames from the node ----------------------------------------------------------------
    def _rate_ok(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled) * RATE_PER_S)
        self.refilled = now
        self.tokens -= 1
        return self.tokens >= 0

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or self.node_id is None:
            return
        if not self._rate_ok():
            await self._close(protocol.CLOSE_RATE_LIMITED)
            return
        try:
            msg = protocol.parse_frame(
                text_data if text_data is not None else (bytes_data or b""),
                allowed=protocol.NODE_TO_SERVER,
            )
            kind = str(msg["type"])
            MESSAGES.labels("in", kind if not kind.startswith("tunnel_") else "tunnel").inc()
            await self._dispatch(kind, msg)
        except ProtocolError as exc:
            await self._close(exc.code)

    async def _dispatch(self, kind: str, msg: dict[str, Any]) -> None:
        assert self.node_id is not None
        if not self.hello_done:
            if self.hello_task is None:
                if kind != "hello":
                    raise ProtocolError("the first frame must be hello")
                # the hello's database work runs beside the consumer's message loop, so a
                # disconnect is seen (and stops it) while it is queued or running
                self.hello_seen = True
                self.hello_task = asyncio.create_task(self._hello(msg))
                self.tasks.append(self.hello_task)
                return
            await asyncio.shield(self.hello_task)  # frames sent right behind hello wait for it
            if self.closing or not self.hello_done:
                return
        if kind == "hello":
            raise ProtocolError("hello twice")
        if kind == "ack":
            relay = await db(stream.ack_handle)(self.node_id, msg)
            if relay is not None:
                await self._relay(*relay)
        elif kind == "heartbeat":
            fields = stream.heartbeat_fields(msg)
            now = time.monotonic()
            silent = now - self.heard > ONLINE_WITHIN.total_seconds()  # browsers show stale
            self.heard = now
            if silent or now - self.beat_written >= HEARTBEAT_WRITE_S:
                self.beat_written = now
                await db(stream.heartbeat_store)(self.node_id, fields)
            if silent:
                self.node.last_seen_at = fields["last_seen_at"]
                node_live.node_status_publish(self.node, connected=True)
        elif kind.startswith(protocol.TUNNEL_PREFIX):
            await self.tunnels.from_node(self.node_id, msg)
        else:
            reply = await db(_HANDLERS[kind])(self.node_id, msg)
            if reply is not None:
                self._enqueue(reply)

    async def _hello(self, msg: dict[str, Any]) -> None:
        try:
            await self._hello_work(msg)
        except ProtocolError as exc:
            await self._close(exc.code)
        except Exception:  # the database or the channel layer failed: the node retries
            log.warning("hello of node %s failed", self.node_id, exc_info=True)
            with contextlib.suppress(Exception):
                await self._close(CLOSE_SERVER_ERROR)

    async def _hello_work(self, msg: dict[str, Any]) -> None:
        """Attach + welcome, then the signed commands: each step only while the socket is open
        (a node that gave up must not cost a ``node_key`` or an ``assign_miners``)."""
        assert self.node_id is not None
        if self._gone():
            return

        def attach() -> tuple[dict[str, Any], Any, Any] | None:
            # checked again on the database thread: under a burst the step waits there, and
            # a node that gave up meanwhile costs no UPDATE (read across threads: a bool)
            if self._gone():
                return None
            return stream.hello_handle(
                self.node, self.session_expires, msg, channel=self.channel_name, replica=REPLICA
            )

        attached = await db(attach)()
        if attached is None or self._gone():
            return
        welcome, node, chain = attached
        self.hello_done = True
        # newest connection wins, on every replica: the others close with 4409
        await self.channel_layer.group_send(
            node_group(self.node_id), {"type": "node.replace", "channel": self.channel_name}
        )
        await self.send(text_data=protocol.dump_frame(welcome))
        MESSAGES.labels("out", "welcome").inc()
        self.heard = time.monotonic()
        node_live.node_status_publish(node, connected=True)
        self.tasks.append(asyncio.create_task(self._sender()))
        if self._gone():
            return
        commands = await db(
            lambda: [] if self._gone() else ownership.commands_on_hello(node, chain)
        )()
        for command in commands:
            if not self._gone():
                self._enqueue(command)

    async def _relay(self, command_id: str, status: str, result: Any, error: str) -> None:
        if status == "accepted":
            return
        reply = self.waiters.pop(command_id, None)
        if reply:
            await self.channel_layer.send(
                reply, {"type": "node.ack", "status": status, "result": result, "error": error}
            )

    def _enqueue(self, frame: dict[str, Any]) -> bool:
        try:
            self.outbox.put_nowait(protocol.dump_frame(frame))
        except asyncio.QueueFull:
            assert self.node_id is not None
            node_id = self.node_id
            task = asyncio.create_task(db(stream.events_dropped)(node_id, 1))
            self.tasks.append(task)
            return False
        MESSAGES.labels("out", str(frame.get("type"))).inc()
        return True

    # --- channel-layer events ----------------------------------------------------------------
    async def node_command(self, event: dict[str, Any]) -> None:
        command = event["command"]
        reply = str(event.get("reply_to") or "")
        if self.closing:
            return
        if self._enqueue(command):
            if reply and len(self.waiters) < MAX_WAITERS:
                self.waiters[str(command["command_id"])] = reply
        elif reply:
            await self.channel_layer.send(
                reply,
                {"type": "node.ack", "status": "failed", "error": "Dropped: the queue is full."},
            )

    async def node_tunnel(self, event: dict[str, Any]) -> None:
        if self.hello_done and not self.closing:
            await self.tunnels.to_node(event)

    async def node_replace(self, event: dict[str, Any]) -> None:
        if event.get("channel") != self.channel_name:
            await self._close(protocol.CLOSE_REPLACED)

    async def node_revoked(self, event: dict[str, Any]) -> None:
        self.revoked = True
        await self._close(protocol.CLOSE_REVOKED)

    async def node_goaway(self, event: dict[str, Any]) -> None:
        if self.closing:
            return
        delay = int(event.get("reconnect_after_ms", 1000))
        await self.send(
            text_data=protocol.dump_frame({"type": "goaway", "reconnect_after_ms": delay})
        )
        MESSAGES.labels("out", "goaway").inc()
        with contextlib.suppress(Exception):
            await self._close(protocol.CLOSE_DRAINING)
