"""Running verified commands: ``accepted`` at once, then one final ack.

Long jobs (``discover``) take the node's one exclusive slot; miner actions share a bounded
pool; node housekeeping (``assign_miners``, ``node_key``, ``key_rotation``, ``ping``) is quick
and runs at once. A command that finds its slot taken is answered ``busy`` (final) — the
server decides whether to retry. Every refusal is logged with its reason and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fleetnode.actions import run_action
from fleetnode.assignment import AssignmentError
from fleetnode.discover import Discovery
from fleetnode.node import Node
from fleetnode.protocol import EXCLUSIVE_KINDS, MINER_ACTION_KINDS
from fleetnode.trust import Command, Rejected

log = logging.getLogger("fleetnode.commands")

DEFAULT_POOL = 8
MAX_ERROR = 500  # the server keeps this much of an ack's error text


@dataclass(frozen=True, slots=True)
class Final:
    status: str  # ok | partial | failed | rejected | busy
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


Handler = Callable[[Command], Awaitable[Final]]
Send = Callable[[dict[str, Any]], None]


def ack(command_id: str | int, status: str, final: Final | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "ack", "command_id": command_id, "status": status}
    if final is not None:
        frame["result"] = final.result
        if final.error:
            frame["error"] = final.error[:MAX_ERROR]
    return frame


class Dispatcher:
    def __init__(
        self,
        node: Node,
        send: Send,
        *,
        pool_size: int = DEFAULT_POOL,
        handlers: dict[str, Handler] | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.node = node
        self.send = send
        self.online = True  # the client says when the control stream is down
        self.discovery = discovery or Discovery(
            send, registry=node.registry, online=lambda: self.online
        )
        self.pool_size = max(1, pool_size)
        self.exclusive: asyncio.Task[None] | None = None
        self.pool: set[asyncio.Task[None]] = set()
        self.quick: set[asyncio.Task[None]] = set()
        self.handlers: dict[str, Handler] = {
            "ping": self._ping,
            "assign_miners": self._assign,
            "node_key": self._node_key,
            "key_rotation": self._rotate,
            "discover": self._discover,
            **{kind: self._miner_action for kind in MINER_ACTION_KINDS},
            **(handlers or {}),
        }

    def handle(self, frame: dict[str, Any]) -> None:
        """One ``command`` frame from the server. Never raises."""
        metrics = self.node.metrics
        try:
            command = self.node.trust.accept(frame)
        except Rejected as exc:
            log.warning(
                "rejected command %s (kind %s): %s",
                exc.command_id,
                str(frame.get("kind"))[:40],
                exc.reason,
            )
            metrics.rejected.labels(exc.category).inc()
            if exc.command_id is not None:
                self.send(ack(exc.command_id, "rejected", Final("rejected", {}, exc.reason)))
            return
        if command.kind in EXCLUSIVE_KINDS:
            if self.exclusive is not None and not self.exclusive.done():
                return self._busy(command, "a long job is already running")
            self.exclusive = self._start(command)
        elif command.kind in MINER_ACTION_KINDS:
            self.pool = {t for t in self.pool if not t.done()}
            if len(self.pool) >= self.pool_size:
                return self._busy(command, f"{self.pool_size} miner actions already running")
            self.pool.add(self._start(command))
        else:
            self.quick = {t for t in self.quick if not t.done()}
            self.quick.add(self._start(command))

    def connected(self) -> None:
        """A new control-stream connection: unacknowledged discovery batches go again."""
        self.online = True
        self.discovery.reconnected()

    def disconnected(self) -> None:
        self.online = False

    def batch_ack(self, frame: dict[str, Any]) -> None:
        """A ``batch_ack`` naming a ``command_id`` (a discovery batch's)."""
        if not self.discovery.batch_ack(frame):
            log.debug(
                "batch_ack for discovery command %s not running here", frame.get("command_id")
            )

    def _busy(self, command: Command, why: str) -> None:
        log.info("busy: command %s (%s): %s", command.command_id, command.kind, why)
        self.node.metrics.commands.labels(command.kind, "busy").inc()
        self.send(ack(command.command_id, "busy", Final("busy", {}, why)))

    def _start(self, command: Command) -> asyncio.Task[None]:
        self.send(ack(command.command_id, "accepted"))
        return asyncio.create_task(self._run(command), name=f"command-{command.command_id}")

    async def _run(self, command: Command) -> None:
        try:
            final = await self.handlers[command.kind](command)
        except asyncio.CancelledError:
            final = Final("failed", {}, "the node stopped before it finished")
            self.send(ack(command.command_id, final.status, final))
            raise
        except Exception as exc:  # a bug must cost one command, not the node
            log.exception("command %s (%s) crashed", command.command_id, command.kind)
            final = Final("failed", {}, f"node error: {type(exc).__name__}")
        log.info(
            "command %s (%s by %s): %s",
            command.command_id,
            command.kind,
            str(command.actor)[:80],
            final.status,
        )
        self.node.metrics.commands.labels(command.kind, final.status).inc()
        self.send(ack(command.command_id, final.status, final))

    async def stop(self) -> None:
        tasks = [t for t in (*self.pool, *self.quick, self.exclusive) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- handlers -------------------------------------------------------------------------
    async def _ping(self, command: Command) -> Final:
        return Final("ok")

    async def _assign(self, command: Command) -> Final:
        try:
            return Final("ok", self.node.assign(command.payload))
        except AssignmentError as exc:
            return Final("rejected", {}, str(exc))

    async def _node_key(self, command: Command) -> Final:
        try:
            return Final("ok", self.node.set_node_key(command.payload))
        except AssignmentError as exc:
            return Final("rejected", {}, str(exc))

    async def _rotate(self, command: Command) -> Final:
        try:
            return Final("ok", {"kid": self.node.trust.rotate(command)})
        except Rejected as exc:
            return Final("rejected", {}, exc.reason)

    async def _discover(self, command: Command) -> Final:
        status, result, error = await self.discovery.run(command.command_id, command.payload)
        return Final(status, result, error)

    async def _miner_action(self, command: Command) -> Final:
        outcome = await run_action(
            self.node.registry,
            command.kind,
            command.payload,
            self.node.assignment.miners,
            node_key=self.node.node_key,
            node_id=self.node.node_id,
        )
        return Final(outcome.status, outcome.result, outcome.error)
