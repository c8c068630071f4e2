"""``fleetnode run``: the control stream, the poll loop and the metrics endpoint together,
until SIGTERM/SIGINT (clean stop) or the server revokes the node (exit 3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from prometheus_client import disable_created_metrics

from fleetnode.client import Client, Stop
from fleetnode.metrics import Metrics, serve_metrics
from fleetnode.node import Node
from fleetnode.poller import Poller
from fleetnode.state import State
from miners import Registry, close_shared_http, default_drivers

log = logging.getLogger("fleetnode.agent")

EXIT_REVOKED = 3


async def poll_loop(node: Node, poller: Poller, client: Client) -> None:
    """Poll, buffer, tell the client; again after the interval or at once on a new
    assignment. Runs whether or not the server is reachable (offline polls are buffered)."""
    metrics = node.metrics
    while True:
        node.assignment_changed.clear()
        started = time.monotonic()
        assignment = node.assignment
        if assignment.miners:
            try:
                outcomes = await poller.cycle(
                    assignment.miners, node_key=node.node_key, node_id=node.node_id
                )
                for outcome in outcomes:
                    metrics.polls.labels("ok" if outcome["status"] else "error").inc()
                node.buffer.add(outcomes)
                client.telemetry_added()
            except OSError as exc:
                log.error("can't buffer telemetry: %s", exc)
        remaining = assignment.poll_interval_s - (time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.assignment_changed.wait(), max(0.5, remaining))


async def run_agent(
    state: State,
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = 9464,
    include_pyasic: bool = True,
) -> int:
    disable_created_metrics()  # type: ignore[no-untyped-call]  # the agent alone: no *_created
    metrics = Metrics()
    registry = Registry(default_drivers(include_pyasic=include_pyasic))
    node = Node(state, registry=registry, metrics=metrics)
    for problem in state.check_permissions():
        log.warning("state directory: %s", problem)
    client = Client(node)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, client.stop)
    runner = None
    if metrics_port is not None:
        runner = await serve_metrics(metrics, metrics_host, metrics_port)
        log.info("metrics on http://%s:%d/metrics", metrics_host, metrics_port)
    poller_task = asyncio.create_task(poll_loop(node, Poller(registry), client))
    log.info(
        "node %s (%s) starting against %s with %d assigned miners",
        node.node_id,
        node.config.name,
        node.config.server,
        len(node.assignment.miners),
    )
    try:
        await client.run()
        return 0
    except Stop as exc:
        log.error("%s", exc)
        return EXIT_REVOKED
    finally:
        poller_task.cancel()
        await asyncio.gather(poller_task, return_exceptions=True)
        await client.dispatcher.stop()
        if runner is not None:
            await runner.cleanup()
        await close_shared_http()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
