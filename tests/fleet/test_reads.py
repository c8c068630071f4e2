"""Samples, the fleet summary and the per-miner Prometheus endpoint, after real polls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.actor import Actor
from accounts.services.tokens import api_token_create
from fleet.models import Miner, Sample
from fleet.services import polling
from fleet.services.miners import miner_add
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.conftest import PASSWORD, ThreadedFleet

pytestmark = pytest.mark.usefixtures("loopback_allowed")


@pytest.fixture
def polled(org_a: OrgWorld, rigs: ThreadedFleet) -> Iterator[list[Miner]]:
    actor = Actor.system("tests")
    miners = [
        miner_add(actor=actor, site=org_a.sites[i % 2], host=e["host"], password=PASSWORD)
        for i, e in enumerate(rigs.inventory)
    ]
    polling.poll_shard([m.pk for m in miners])
    yield miners


def test_samples_are_bucketed_by_step(polled: list[Miner], org_a: OrgWorld) -> None:
    miner = polled[0]
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(
            miner=miner, ts=now - dt.timedelta(seconds=10 * i), hashrate_ths=100.0 + i, power_w=3000
        )
        for i in range(1, 60)
    )
    client = api_client_for(org_a.users["viewer"])
    start = (now - dt.timedelta(minutes=10)).isoformat()
    body = client.get(
        f"/api/v1/miners/{miner.pk}/samples/",
        {"from": start, "to": (now - dt.timedelta(seconds=5)).isoformat(), "step": 60},
    ).json()
    assert body["step"] == 60 and 9 <= len(body["points"]) <= 11
    assert all(p["power_w"] == 3000 for p in body["points"])
    assert client.get(f"/api/v1/miners/{miner.pk}/samples/", {"step": 1}).status_code == 400
    assert client.get(f"/api/v1/miners/{miner.pk}/samples/", {"from": "soon"}).status_code == 400
    default = client.get(f"/api/v1/miners/{miner.pk}/samples/").json()
    assert default["points"], "the last 24 h include the poll"


def test_fleet_summary_totals_and_per_site(
    polled: list[Miner], org_a: OrgWorld, org_b: OrgWorld
) -> None:
    body = api_client_for(org_a.users["viewer"]).get("/api/v1/fleet/summary/").json()
    totals = body["totals"]
    assert totals["miners"] == 3 and totals["reporting"] == 3
    assert totals["hashrate_ths"] > 0 and totals["power_w"] > 0 and totals["efficiency_jth"] > 0
    assert totals["health"] == {"ok": 3}
    assert sorted(s["miners"] for s in body["sites"]) == [1, 2]
    one_site = (
        api_client_for(org_a.users["viewer"])
        .get("/api/v1/fleet/summary/", {"site": org_a.sites[0].pk})
        .json()
    )
    assert one_site["totals"]["miners"] == 2
    other = api_client_for(org_b.users["owner"]).get("/api/v1/fleet/summary/").json()
    assert other["totals"]["miners"] == 0 and other["sites"] == []


def test_miner_metrics_need_a_token_and_are_scoped(
    polled: list[Miner], org_a: OrgWorld, org_b: OrgWorld, settings: Any
) -> None:
    assert Client().get("/metrics/miners").status_code == 401
    settings.METRICS_TOKEN = "scrape-me-please-0123456789"
    everything = Client().get(
        "/metrics/miners", HTTP_AUTHORIZATION="Bearer scrape-me-please-0123456789"
    )
    text = b"".join(everything.streaming_content).decode()
    assert everything.status_code == 200 and everything["Content-Type"].startswith("text/plain")
    assert text.count("rigwarden_miner_hashrate_ths{") == 3
    assert 'health="ok"} 1' in text and "rigwarden_miner_up{" in text
    viewer = org_b.users["viewer"]
    secret = api_token_create(actor=Actor.for_user(viewer), user=viewer, name="grafana").secret
    theirs = Client().get("/metrics/miners", HTTP_AUTHORIZATION=f"Token {secret}")
    assert "rigwarden_miner_hashrate_ths{" not in b"".join(theirs.streaming_content).decode()
    mine_secret = api_token_create(
        actor=Actor.for_user(org_a.users["viewer"]), user=org_a.users["viewer"], name="g"
    ).secret
    mine = Client().get("/metrics/miners", HTTP_AUTHORIZATION=f"Token {mine_secret}")
    assert b"".join(mine.streaming_content).decode().count("rigwarden_miner_power_watts{") == 3


def test_ops_metrics_carry_fleet_gauges_and_poller_histograms(
    polled: list[Miner], settings: Any
) -> None:
    settings.METRICS_TOKEN = "scrape-me-please-0123456789"  # the per-org gauges need it
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-please-0123456789")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'rigwarden_fleet_miners{health="ok",org="alpha"' in text
    assert "rigwarden_fleet_hashrate_ths{" in text
    assert "rigwarden_poll_seconds_bucket" in text and "rigwarden_poll_shard_seconds_count" in text


def test_rollups_serve_long_ranges_and_raw_samples_expire(
    polled: list[Miner], org_a: OrgWorld, settings: Any
) -> None:
    from fleet.models import SampleRollup
    from fleet.services import retention

    miner = polled[0]
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(miner=miner, ts=now - dt.timedelta(minutes=i), hashrate_ths=200.0, power_w=3500)
        for i in range(1, 100)
    )
    assert retention.rollup(now=now) > 0
    five = SampleRollup.objects.filter(miner=miner, resolution=300)
    assert five.exists() and all(r.hashrate_ths == 200.0 for r in five if r.count > 1)
    body = (
        api_client_for(org_a.users["viewer"])
        .get(
            f"/api/v1/miners/{miner.pk}/samples/",
            {"from": (now - dt.timedelta(hours=2)).isoformat(), "to": now.isoformat(), "step": 300},
        )
        .json()
    )
    assert body["points"] and body["step"] == 300
    settings.FLEET_RAW_SAMPLE_HOURS = 1
    pruned = retention.prune(now=now + dt.timedelta(hours=2))
    assert pruned["raw"] >= 99 and not Sample.objects.filter(miner=miner).exists()
    assert SampleRollup.objects.filter(miner=miner).exists()  # the averages outlive raw rows


def test_rollups_in_python_agree_with_sql(
    polled: list[Miner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default (SQLite) groups in Python: same buckets as PostgreSQL's SQL."""
    from django.db import connection

    from fleet.services import retention

    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(miner=polled[0], ts=now - dt.timedelta(seconds=37 * i), hashrate_ths=float(i))
        for i in range(1, 200)
    )
    start, end = now - dt.timedelta(hours=2), now
    sql = sorted(
        (r["miner_id"], int(r["bucket"]), round(r["h"] or 0, 6), r["n"])
        for r in retention._buckets(start, end, 300)
    )
    monkeypatch.setattr(connection, "vendor", "sqlite")
    py = sorted(
        (r["miner_id"], int(r["bucket"]), round(r["h"] or 0, 6), r["n"])
        for r in retention._buckets(start, end, 300)
    )
    assert sql == py and len(sql) > 5


def test_logs_are_read_from_the_rig_with_permission_and_audit(
    polled: list[Miner], org_a: OrgWorld
) -> None:
    from accounts.models import ActivityEvent

    proto = next(m for m in polled if m.driver == "protoos")
    tech = api_client_for(org_a.users["field_tech"])
    body = tech.get(f"/api/v1/miners/{proto.pk}/logs/", {"lines": 20, "source": "miner_sw"})
    assert body.status_code == 200, body.content
    assert 0 < len(body.json()["lines"]) <= 20
    assert ActivityEvent.unscoped.filter(verb="miner.logs", target_id=str(proto.pk)).exists()
    viewer = api_client_for(org_a.users["viewer"])
    assert viewer.get(f"/api/v1/miners/{proto.pk}/logs/").status_code == 403
    assert tech.get(f"/api/v1/miners/{proto.pk}/logs/", {"lines": 0}).status_code == 400
    assert tech.get(f"/api/v1/miners/{proto.pk}/logs/", {"source": "kernel"}).status_code == 400


def test_miner_list_exports_as_csv_with_the_filters(
    polled: list[Miner], org_a: OrgWorld, org_b: OrgWorld
) -> None:
    import csv
    import io

    owner = api_client_for(org_a.users["owner"])
    response = owner.get("/api/v1/miners/export/", {"driver": "protoos", "ordering": "name"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 2 and all(r["driver"] == "protoos" for r in rows)
    assert rows[0]["hashrate_ths"] and rows[0]["site"]
    assert api_client_for(org_a.users["viewer"]).get("/api/v1/miners/export/").status_code == 403
    other = api_client_for(org_b.users["owner"]).get("/api/v1/miners/export/")
    assert b"".join(other.streaming_content).decode().count("\n") == 1  # the header alone
