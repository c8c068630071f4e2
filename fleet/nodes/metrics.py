"""Fleet-node figures on ``/metrics``: process counters (this replica's stream traffic) and
gauges read from the database at scrape time (every replica reports the same truth)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HANDSHAKES = Counter(
    "rigwarden_node_handshakes_total",
    "Node enrollment and session handshakes by step and outcome",
    ["step", "outcome"],
)
MESSAGES = Counter(
    "rigwarden_node_messages_total",
    "Control-stream messages by direction and type",
    ["direction", "type"],
)
CLOSES = Counter("rigwarden_node_closes_total", "Control streams closed, by close code", ["code"])
COMMANDS = Counter(
    "rigwarden_node_commands_total",
    "Signed commands by kind and outcome (sent, acked statuses, timeout, undelivered)",
    ["kind", "outcome"],
)
DROPPED = Counter(
    "rigwarden_node_dropped_total",
    "Events dropped on the control stream (full outgoing queue, untrusted reports)",
    ["reason"],
)
SOCKETS = Gauge("rigwarden_node_sockets", "Control streams connected to this process")


class NodeCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("rigwarden_fleet_nodes", "Fleet nodes by status and state")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from fleet.models import FleetNode
        from fleet.nodes.state import connection_state

        family = GaugeMetricFamily(
            "rigwarden_fleet_nodes", "Fleet nodes by status and state", labels=["status", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        try:
            rows = list(FleetNode.unscoped.values_list("status", "channel_name", "last_seen_at"))
        except Exception:
            return
        for status, channel, seen in rows:
            key = (status, connection_state(bool(channel), seen, status=status))
            counts[key] = counts.get(key, 0) + 1
        for (status, state), n in sorted(counts.items()):
            family.add_metric([status, state], n)
        yield family
