"""The node's own Prometheus metrics, served on loopback only (``--metrics`` port)."""

from __future__ import annotations

import ipaddress

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commands = Counter(
            "fleetnode_commands_total",
            "Commands by kind and final status",
            ["kind", "status"],
            registry=r,
        )
        self.rejected = Counter(
            "fleetnode_commands_rejected_total",
            "Commands refused, by reason",
            ["reason"],
            registry=r,
        )
        self.reconnects = Counter(
            "fleetnode_reconnects_total",
            "Control-stream connection attempts after the first",
            registry=r,
        )
        self.closes = Counter(
            "fleetnode_closes_total", "Control-stream closes by close code", ["code"], registry=r
        )
        self.acks_dropped = Counter(
            "fleetnode_acks_dropped_total",
            "Acks dropped because too many waited for a connection",
            registry=r,
        )
        self.bad_frames = Counter(
            "fleetnode_bad_frames_total", "Server frames that failed to parse", registry=r
        )
        self.batches_sent = Counter(
            "fleetnode_telemetry_batches_sent_total",
            "Telemetry batches sent (re-sends included)",
            registry=r,
        )
        self.batches_acked = Counter(
            "fleetnode_telemetry_batches_acked_total",
            "Telemetry batches the server acknowledged",
            registry=r,
        )
        self.batches_buffered = Gauge(
            "fleetnode_telemetry_batches_buffered", "Telemetry batches waiting on disk", registry=r
        )
        self.batches_dropped = Gauge(
            "fleetnode_telemetry_batches_dropped",
            "Telemetry batches lost to the buffer bound (ever)",
            registry=r,
        )
        self.polls = Counter(
            "fleetnode_polls_total", "Miner polls by result", ["result"], registry=r
        )
        self.connected = Gauge(
            "fleetnode_connected", "1 while the control stream is up", registry=r
        )
        self.last_heartbeat = Gauge(
            "fleetnode_last_heartbeat_timestamp_seconds",
            "When the last heartbeat was sent",
            registry=r,
        )
        self.miners = Gauge("fleetnode_assigned_miners", "Miners assigned to this node", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def check_loopback(host: str) -> str:
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
    except ValueError:
        raise ValueError(f"metrics listen on loopback only, not {host!r}") from None
    return host


async def serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, check_loopback(host), port).start()
    return runner
