"""What the running agent knows about itself: identity, keys, trusted command keys, the miners
it polls, the telemetry buffer — loaded from the state directory, saved back on change."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fleetnode import __version__
from fleetnode.assignment import Assignment, AssignmentError, parse_assignment
from fleetnode.metrics import Metrics
from fleetnode.protocol import ProtocolError, b64encode, open_sealed
from fleetnode.state import State, StateError
from fleetnode.telemetry import TelemetryBuffer
from fleetnode.trust import Trust
from miners import Registry

log = logging.getLogger("fleetnode.node")


class Node:
    def __init__(
        self,
        state: State,
        *,
        registry: Registry,
        metrics: Metrics | None = None,
        buffer: TelemetryBuffer | None = None,
    ) -> None:
        config = state.config()
        api_key = state.api_key()
        if config is None or api_key is None:
            raise StateError(f"{state.dir} holds no enrolled node: run `fleetnode enroll` first")
        self.state = state
        self.config = config
        self.api_key = api_key
        self.identity = state.identity()
        self.sealing = state.sealing_key()
        self.registry = registry
        self.metrics = metrics or Metrics()
        self.trust = Trust(state)
        self.buffer = buffer or TelemetryBuffer(state)
        self.node_key = state.node_key()
        self.assignment = Assignment.empty()
        self.assignment_changed = asyncio.Event()
        stored = state.assignment()
        if stored is not None:
            try:
                self.assignment = parse_assignment(stored, self.drivers)
            except AssignmentError as exc:
                log.error("stored assignment unusable (%s); waiting for the server's", exc)
        self.metrics.miners.set(len(self.assignment.miners))

    @property
    def node_id(self) -> int:
        return self.config.node_id

    @property
    def drivers(self) -> set[str]:
        return {driver.name for driver in self.registry.drivers}

    def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "node_id": self.node_id,
            "agent_version": __version__,
            "encryption_key": b64encode(self.sealing.public_key().public_bytes_raw()),
            "seq_hwm": dict(self.trust.hwm),
            "buffered": len(self.buffer),
            # the set this node polls (kept in its state): an unchanged set is not re-sent
            **({"assignment_version": v} if (v := self.assignment.version) else {}),
        }

    def assign(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace the polled set (raises ``AssignmentError``; the old set stays then)."""
        assignment = parse_assignment(payload, self.drivers)
        self.state.set_assignment(payload)
        self.assignment = assignment
        self.assignment_changed.set()
        self.metrics.miners.set(len(assignment.miners))
        log.info(
            "assigned %d miners, polled every %g s",
            len(assignment.miners),
            assignment.poll_interval_s,
        )
        return {"miners": len(assignment.miners)}

    def set_node_key(self, payload: dict[str, Any]) -> dict[str, Any]:
        sealed = payload.get("sealed")
        if not isinstance(sealed, dict):
            raise AssignmentError("sealed is not an object")
        try:
            key = open_sealed(self.sealing, self.node_id, sealed)
        except (ProtocolError, ValueError) as exc:
            raise AssignmentError(str(exc)) from None
        if len(key) != 32:
            raise AssignmentError("the node key is not 32 bytes")
        self.state.set_node_key(key)
        self.node_key = key
        log.info("node key installed")
        return {}
