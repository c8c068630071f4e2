"""The poller against simulated rigs: latest figures, samples, health with hysteresis, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.models import ActivityEvent
from fleet.models import Miner, MinerLatest, Sample
from fleet.services import polling
from fleet.services.miners import miner_add, miner_set_credentials
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.conftest import PASSWORD, ThreadedFleet

pytestmark = pytest.mark.usefixtures("loopback_allowed")


@pytest.fixture
def fleet(org_a: OrgWorld, rigs: ThreadedFleet) -> Iterator[list[Miner]]:
    actor = Actor.system("tests")
    miners = [
        miner_add(actor=actor, site=org_a.sites[0], host=e["host"], password=PASSWORD)
        for e in rigs.inventory
    ]
    yield miners
    for entry in rigs.inventory:
        rigs.fault(entry["host"])  # clear every fault


def test_a_poll_fills_latest_samples_and_health(fleet: list[Miner], org_a: OrgWorld) -> None:
    summary = polling.poll_shard([m.pk for m in fleet])
    assert summary.polled == 3 and summary.ok == 3, summary
    for miner in fleet:
        latest = MinerLatest.objects.get(miner=miner)
        assert latest.hashrate_ths and latest.hashrate_ths > 0 and latest.power_w
        assert latest.pools and latest.updated_at is not None
        assert Miner.unscoped.get(pk=miner.pk).health == "ok"
    assert Sample.objects.filter(miner__in=fleet).count() == 3
    body = api_client_for(org_a.users["viewer"]).get(f"/api/v1/miners/{fleet[0].pk}/").json()
    assert body["latest"]["hashrate_ths"] > 0 and body["latest"]["pools"][0]["url"]
    assert body["health"] == "ok"


def test_one_missed_poll_is_not_offline(
    fleet: list[Miner], rigs: ThreadedFleet, settings: Any
) -> None:
    settings.FLEET_POLL_DEADLINE = 1.0
    target = fleet[0]
    polling.poll_shard([target.pk])
    rigs.fault(target.host, "offline")
    healths = []
    for _ in range(3):
        polling.poll_shard([target.pk])
        healths.append(Miner.unscoped.get(pk=target.pk).health)
    assert healths == ["ok", "ok", "offline"]
    latest = MinerLatest.objects.get(miner=target)
    assert latest.failures == 3 and latest.last_error["kind"] in ("unreachable", "timeout")
    event = ActivityEvent.unscoped.get(
        verb="miner.health", target_id=str(target.pk), details__to="offline"
    )
    assert event.details["from"] == "ok"
    rigs.fault(target.host)
    polling.poll_shard([target.pk])
    assert Miner.unscoped.get(pk=target.pk).health == "ok"


def test_a_refused_login_is_auth_needed_at_once(fleet: list[Miner]) -> None:
    target = next(m for m in fleet if m.driver == "protoos")
    miner_set_credentials(actor=Actor.system("tests"), miner=target, password="wrong-pass-1")
    polling.poll_shard([target.pk])
    assert Miner.unscoped.get(pk=target.pk).health == "auth_needed"


def test_a_slow_miner_never_delays_the_others(
    fleet: list[Miner], rigs: ThreadedFleet, settings: Any
) -> None:
    settings.FLEET_POLL_DEADLINE = 1.0
    slow = fleet[0]
    rigs.fault(slow.host, "slow", ms=5000)
    started = time.monotonic()
    summary = polling.poll_shard([m.pk for m in fleet])
    elapsed = time.monotonic() - started
    assert summary.ok == 2 and summary.failed == 1
    assert elapsed < 3.5, elapsed  # one deadline (+ slack), not the slow rig's 5 s
    assert MinerLatest.objects.get(miner=slow).last_error["kind"] == "timeout"


def test_garbage_replies_count_as_a_failed_poll(fleet: list[Miner], rigs: ThreadedFleet) -> None:
    target = fleet[0]
    rigs.fault(target.host, "garbage")
    summary = polling.poll_shard([target.pk])
    assert summary.failed == 1
    assert MinerLatest.objects.get(miner=target).failures == 1


def test_due_shards_claim_what_is_due(fleet: list[Miner], settings: Any) -> None:
    settings.FLEET_POLL_SHARD_SIZE = 2
    settings.FLEET_POLL_QUEUES = 1
    shards = polling.due_shards()
    assert sorted(i for shard in shards for i in shard.miner_ids) == sorted(m.pk for m in fleet)
    assert [len(s.miner_ids) for s in shards] == [2, 1]
    assert polling.due_shards() == []  # claimed: the next tick doesn't take them again


def test_poll_refuses_an_address_no_longer_allowed(fleet: list[Miner], settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    summary = polling.poll_shard([fleet[0].pk])
    assert summary.failed == 1
    assert MinerLatest.objects.get(miner=fleet[0]).last_error["kind"] == "refused"


def test_list_orders_by_latest_figures(fleet: list[Miner], org_a: OrgWorld) -> None:
    polling.poll_shard([m.pk for m in fleet])
    client = api_client_for(org_a.users["viewer"])
    rows = client.get("/api/v1/miners/", {"ordering": "-hashrate_ths"}).json()["results"]
    rates = [r["latest"]["hashrate_ths"] for r in rows]
    assert rates == sorted(rates, reverse=True)


def test_the_beat_tick_polls_through_the_shard_task(fleet: list[Miner], settings: Any) -> None:
    from fleet import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        # one shard per queue the three miners fall in (poll.<id % FLEET_POLL_QUEUES>)
        queues = {m.pk % settings.FLEET_POLL_QUEUES for m in fleet}
        assert tasks.poll_due.delay().get() == len(queues)
    finally:
        app.conf.task_always_eager = False
    assert MinerLatest.objects.filter(miner__in=fleet, updated_at__isnull=False).count() == 3


def test_ingest_publishes_deltas_per_site_after_commit(
    fleet: list[Miner], monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from fleet import live

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(live, "publish", lambda group, message: sent.append((group, message)))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_shard([m.pk for m in fleet])
    telemetry = [m for _g, m in sent if m["type"] == "telemetry"]
    assert {g for g, m in sent if m["type"] == "telemetry"} == {f"live.site.{fleet[0].site_id}"}
    assert sorted(d["id"] for m in telemetry for d in m["miners"]) == sorted(m.pk for m in fleet)
    assert all(d["hashrate_ths"] for m in telemetry for d in m["miners"])
    assert [m["to"] for _g, m in sent if m["type"] == "health"] == ["ok", "ok", "ok"]


def test_full_status_now_and_then_summaries_keep_the_boards(fleet: list[Miner]) -> None:
    proto = next(m for m in fleet if m.driver == "protoos")
    polling.poll_shard([proto.pk])  # never fully read: FULL
    first = MinerLatest.objects.get(miner=proto)
    assert first.full_at is not None and first.hashboards and first.fans
    polling.poll_shard([proto.pk])  # within FLEET_FULL_STATUS_INTERVAL: a summary
    second = MinerLatest.objects.get(miner=proto)
    assert second.full_at == first.full_at and second.updated_at > first.updated_at
    assert second.hashboards == first.hashboards and second.fans == first.fans


def test_max_temp_is_the_hottest_chip_through_summary_polls(
    fleet: list[Miner], settings: Any
) -> None:
    """A ProtoOS rig's "max temp" is its hottest ASIC (per-chip telemetry), above the ASIC
    average, and stays so on the summary polls between full ones (`/mining` has only the
    average): it used to be the average."""
    proto = [m for m in fleet if m.driver == "protoos"]
    assert proto
    polling.poll_shard([m.pk for m in proto])  # first poll: FULL
    for miner in proto:
        latest = MinerLatest.objects.get(miner=miner)
        temps = latest.temperatures
        assert temps["chip_max_c"] == max(b["chip_temp_max_c"] for b in latest.hashboards)
        assert latest.max_temp_c == temps["chip_max_c"] > temps["chip_avg_c"]
        assert all(b["chip_temp_c"] for b in latest.hashboards)
    full_at = {m.pk: MinerLatest.objects.get(miner=m).full_at for m in proto}
    polling.poll_shard([m.pk for m in proto])  # within the full interval: a SUMMARY
    for miner in proto:
        latest = MinerLatest.objects.get(miner=miner)
        assert latest.full_at == full_at[miner.pk] and latest.updated_at > latest.full_at
        assert latest.max_temp_c == latest.temperatures["chip_max_c"]
        assert latest.max_temp_c > latest.temperatures["chip_avg_c"]
