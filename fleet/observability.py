"""Fleet figures on ``/metrics``: gauges per org and site (read from the database at scrape
time, so every web replica reports the same truth) and the poller's own histograms.

The per-org/site gauges are tenants' business figures: they live in a registry of their own,
not the process-wide one, and ``/metrics`` adds them only for a scrape that presents
``METRICS_TOKEN`` (``tenant_exposition``). The histograms and counters carry no org or site.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Sum
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

POLL_SECONDS = Histogram(
    "rigwarden_poll_seconds",
    "One miner's poll, from connect to status",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
)
SHARD_SECONDS = Histogram(
    "rigwarden_poll_shard_seconds",
    "One shard: load, poll every miner, ingest",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
POLL_ERRORS = Counter("rigwarden_poll_errors_total", "Failed polls by kind", ["kind"])
LIVE_DROPPED = Counter(
    "rigwarden_live_dropped_total", "Live updates dropped because a browser fell behind"
)


class FleetCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Names only (the registry asks at registration: no database access then)."""
        yield GaugeMetricFamily("rigwarden_fleet_miners", "Miners by health")
        yield GaugeMetricFamily("rigwarden_fleet_hashrate_ths", "Fleet hashrate (TH/s)")
        yield GaugeMetricFamily("rigwarden_fleet_power_watts", "Fleet power")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from fleet.models import Miner
        from fleet.selectors import reporting_q

        miners = GaugeMetricFamily(
            "rigwarden_fleet_miners", "Miners by health", labels=["org", "site", "health"]
        )
        hashrate = GaugeMetricFamily(
            "rigwarden_fleet_hashrate_ths", "Fleet hashrate (TH/s)", labels=["org", "site"]
        )
        power = GaugeMetricFamily(
            "rigwarden_fleet_power_watts", "Fleet power", labels=["org", "site"]
        )
        try:
            counts = list(
                Miner.unscoped.values_list("org__slug", "site__slug", "health")
                .annotate(n=Count("id"))
                .order_by()
            )
            sums = list(
                Miner.unscoped.values_list("org__slug", "site__slug")
                .annotate(  # the reporting miners' only, as the fleet summary's
                    h=Sum("latest__hashrate_ths", filter=reporting_q()),
                    p=Sum("latest__power_w", filter=reporting_q()),
                )
                .order_by()
            )
        except Exception:
            return
        for org, site, health, n in counts:
            miners.add_metric([org, site, health], n)
        for org, site, h, p in sums:
            hashrate.add_metric([org, site], h or 0.0)
            power.add_metric([org, site], p or 0.0)
        yield miners
        yield hashrate
        yield power


# per-tenant series: exported only to a scrape with the metrics token (config.views.metrics)
TENANT_REGISTRY = CollectorRegistry(auto_describe=True)
_registered = False


def register() -> None:
    global _registered
    if not _registered:
        from fleet.nodes.metrics import NodeCollector

        TENANT_REGISTRY.register(FleetCollector())
        REGISTRY.register(NodeCollector())  # nodes by status and state: no org, no site
        _registered = True


def tenant_exposition() -> bytes:
    """The per-org/site fleet gauges in Prometheus text format."""
    register()
    return generate_latest(TENANT_REGISTRY)
