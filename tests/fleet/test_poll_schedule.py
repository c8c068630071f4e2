"""The poller's promise: the period is the interval (no drift), a miner always goes to the same
queue, a backed-up queue isn't claimed twice, an overrun shard keeps what finished, and the
org's own interval is honoured."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from accounts.actor import Actor
from fleet.models import FleetSettings, Miner, MinerLatest
from fleet.poller import PollOutcome, PollTarget, poll_targets
from fleet.services import polling
from fleet.services.miners import miner_add
from fleet.services.telemetry import telemetry_ingest
from miners import Detail
from miners.errors import Unreachable
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.fleet.poll_support import due_miner

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clean_queue_marks(settings: Any) -> Iterator[None]:
    keys = [k.format(q) for q in range(64) for k in (polling._SENT, polling._TAKEN)]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


def _failed(miner_ids: list[int], at: dt.datetime) -> list[PollOutcome]:
    return [PollOutcome(i, None, Unreachable("down"), at.timestamp(), 0.1) for i in miner_ids]


def _claims(miners: list[Miner], ticks: int, jitter: float = 0.0) -> dict[int, list[float]]:
    """Run the beat ``ticks`` times (every beat period, ± jitter) and ingest every claim at
    once; return each miner's claim times in seconds from T0."""
    beat = polling.poll_settings().beat
    claimed: dict[int, list[float]] = {m.pk: [] for m in miners}
    for tick in range(ticks):
        now = T0 + dt.timedelta(seconds=tick * beat + (jitter if tick % 2 else -jitter))
        for shard in polling.due_shards(now=now):
            for miner_id in shard.miner_ids:
                claimed[miner_id].append((now - T0).total_seconds())
            # the poll starts a little after the tick; ingest comes later still
            telemetry_ingest(_failed(shard.miner_ids, now + dt.timedelta(seconds=0.4)),
                             scheduled=shard.scheduled)  # fmt: skip
    return claimed


def _periods(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_the_period_is_the_interval(org_a: OrgWorld, settings: Any, jitter: float) -> None:
    settings.FLEET_POLL_INTERVAL = 10
    offsets = [0.0, 0.3, 0.9, 1.2, 1.9, 5.5]  # due anywhere between two ticks
    miners = [due_miner(org_a, i, T0 + dt.timedelta(seconds=o)) for i, o in enumerate(offsets)]
    claimed = _claims(miners, ticks=30, jitter=jitter)  # one minute
    for miner in miners:
        periods = _periods(claimed[miner.pk])
        assert len(periods) >= 4, claimed[miner.pk]
        # a late tick makes one period a little longer and the next as much shorter: never a
        # whole tick (12 s), and the schedule doesn't move
        assert all(abs(p - 10.0) <= 2 * jitter + 1e-6 for p in periods), periods
        span = claimed[miner.pk][-1] - claimed[miner.pk][0]
        assert abs(span - 10.0 * len(periods)) <= 2 * jitter + 1e-6, claimed[miner.pk]
    # a poll starts at the tick nearest its due time: at most half a tick early, never later
    for miner, offset in zip(miners, offsets, strict=True):
        assert abs(claimed[miner.pk][0] - offset) <= 1.0 + 2 * jitter, (offset, claimed[miner.pk])


def test_the_next_due_time_counts_from_the_tick_not_the_ingest(org_a: OrgWorld) -> None:
    miner = due_miner(org_a, 1, T0)
    (shard,) = polling.due_shards(now=T0)
    telemetry_ingest(_failed(shard.miner_ids, T0 + dt.timedelta(seconds=3)),
                     scheduled=shard.scheduled)  # fmt: skip
    miner.refresh_from_db()
    assert miner.next_poll_at == T0 + dt.timedelta(seconds=10)
    # without a schedule (node-pushed batches), from the poll's own start
    telemetry_ingest(_failed([miner.pk], T0 + dt.timedelta(seconds=3)))
    miner.refresh_from_db()
    assert miner.next_poll_at == T0 + dt.timedelta(seconds=13)


def test_a_shard_late_by_more_than_a_tick_counts_from_its_start(
    org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    miner = due_miner(org_a, 1, T0)
    monkeypatch.setattr(polling.runtime, "run", lambda work, timeout: [])
    polling.poll_shard([miner.pk], queue=0, scheduled=time.time() - 30)  # waited 30 s
    miner.refresh_from_db()  # refused (no loopback allowed here): ingested with next = start + 10
    remaining = (miner.next_poll_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 8 < remaining <= 10, remaining


def test_a_miner_always_goes_to_the_same_queue(org_a: OrgWorld, settings: Any) -> None:
    from config.celery import app

    settings.FLEET_POLL_QUEUES = 3
    settings.FLEET_POLL_SHARD_SIZE = 2
    miners = [due_miner(org_a, i, T0) for i in range(7)]
    seen: dict[int, set[int]] = {m.pk: set() for m in miners}
    for round_ in range(3):
        Miner.unscoped.update(next_poll_at=T0)
        for shard in polling.due_shards(now=T0 + dt.timedelta(seconds=round_)):
            assert {i % 3 for i in shard.miner_ids} == {shard.queue}
            assert len(shard.miner_ids) <= 2
            route = app.amqp.router.route(
                {}, "fleet.poll_shard", (shard.miner_ids,),
                {"queue": shard.queue, "scheduled": shard.scheduled},
            )  # fmt: skip
            assert route["queue"].name == f"poll.{shard.queue}"
            for miner_id in shard.miner_ids:
                seen[miner_id].add(shard.queue)
    assert all(len(queues) == 1 for queues in seen.values()), seen
    # every other task stays on the default queue
    assert app.amqp.router.route({}, "fleet.run_job", (1,), {})["queue"].name == "celery"


def test_the_beat_publishes_each_shard_to_its_queue(
    org_a: OrgWorld, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet import tasks

    settings.FLEET_POLL_QUEUES = 2
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    miners = [due_miner(org_a, i, due) for i in range(4)]
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.poll_shard, "apply_async", lambda **kw: sent.append(kw))
    assert tasks.poll_due() == 2
    assert sorted(s["kwargs"]["queue"] for s in sent) == [0, 1]
    for s in sent:
        assert {i % 2 for i in s["args"][0]} == {s["kwargs"]["queue"]}
    assert sorted(i for s in sent for i in s["args"][0]) == sorted(m.pk for m in miners)


def test_a_backed_up_queue_is_not_claimed_again(org_a: OrgWorld, settings: Any) -> None:
    settings.FLEET_POLL_QUEUES = 2
    miners = [due_miner(org_a, i, T0) for i in range(4)]
    shards = polling.due_shards(now=T0)
    polling.mark_sent(shards)  # published; no worker has taken them yet
    Miner.unscoped.update(next_poll_at=T0)  # as if the lease had run out
    assert polling.due_shards(now=T0 + dt.timedelta(seconds=2)) == []
    busy, idle = shards  # queue 0's worker starts its shard, queue 1's is still busy
    polling._mark_taken(busy.queue, busy.scheduled)
    again = polling.due_shards(now=T0 + dt.timedelta(seconds=4))
    assert [s.queue for s in again] == [busy.queue]
    # a mark older than BACKLOG_FORGET_S (a lost message) no longer holds the queue back
    later = T0 + dt.timedelta(seconds=polling.BACKLOG_FORGET_S + 5)
    assert idle.queue in [s.queue for s in polling.due_shards(now=later)]
    assert len(miners) == 4


def test_the_org_interval_is_honoured(org_a: OrgWorld, org_b: OrgWorld, settings: Any) -> None:
    settings.FLEET_POLL_INTERVAL = 10
    FleetSettings.unscoped.create(org=org_b.org, poll_interval_s=30)
    a, b = due_miner(org_a, 1, T0), due_miner(org_b, 2, T0)
    claimed = _claims([a, b], ticks=35)  # 0 .. 68 s
    assert _periods(claimed[a.pk]) == [10.0] * 6
    assert _periods(claimed[b.pk]) == [30.0, 30.0]


# --- against simulated rigs -------------------------------------------------------------------
@pytest.fixture
def rig_miners(
    org_a: OrgWorld, rigs: ThreadedFleet, loopback_allowed: None
) -> Iterator[list[Miner]]:
    actor = Actor.system("tests")
    miners = [
        miner_add(actor=actor, site=org_a.sites[0], host=e["host"], password=PASSWORD)
        for e in rigs.inventory
    ]
    yield miners
    for entry in rigs.inventory:
        rigs.fault(entry["host"])


def test_an_overrun_shard_keeps_what_finished(
    rig_miners: list[Miner], rigs: ThreadedFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = rig_miners[0]
    rigs.fault(slow.host, "slow", ms=6000)
    monkeypatch.setattr(polling, "shard_budget", lambda n, concurrency, deadline: 1.5)
    started = time.monotonic()
    summary = polling.poll_shard([m.pk for m in rig_miners])
    assert time.monotonic() - started < 4.5
    assert summary.polled == 3 and summary.ok == 2 and summary.failed == 1, summary
    error = MinerLatest.objects.get(miner=slow).last_error
    assert error["kind"] == "timeout" and "shard budget" in error["message"]
    for miner in rig_miners[1:]:
        assert MinerLatest.objects.get(miner=miner).updated_at is not None


def test_poll_targets_returns_at_its_budget(rig_miners: list[Miner], rigs: ThreadedFleet) -> None:
    from fleet import runtime

    rigs.fault(rig_miners[0].host, "slow", ms=6000)
    targets, _ = polling._targets([m.pk for m in rig_miners])
    # concurrency 1: the slow rig holds the only slot, the ones queued behind it are cut too
    order = sorted(targets, key=lambda t: t.miner_id != rig_miners[0].pk)

    async def work(registry: Any) -> list[PollOutcome]:
        return await poll_targets(registry, order, concurrency=1, deadline=5, budget=1.0)

    started = time.monotonic()
    outcomes = runtime.run(work, timeout=10)
    assert time.monotonic() - started < 3.0
    assert [o.miner_id for o in outcomes] == [t.miner_id for t in order]
    assert all(o.error is not None and o.error.kind == "timeout" for o in outcomes)


def test_a_recent_full_status_makes_the_first_poll_a_summary(rig_miners: list[Miner]) -> None:
    proto = next(m for m in rig_miners if m.driver == "protoos")
    MinerLatest.objects.create(miner=proto, full_at=dt.datetime.now(dt.UTC))
    stale = next(m for m in rig_miners if m.pk != proto.pk)
    MinerLatest.objects.create(miner=stale, full_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    targets, _ = polling._targets([proto.pk, stale.pk])
    details = {t.miner_id: t.detail for t in targets}
    assert details == {proto.pk: Detail.SUMMARY, stale.pk: Detail.FULL}


def test_full_reads_get_a_quarter_of_the_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most concurrency // 4 FULL statuses at once; summaries use the rest."""
    from fleet import poller

    active, peak = {"full": 0, "summary": 0}, {"full": 0, "summary": 0}

    async def fake_poll(registry: Any, target: PollTarget, *, deadline: float) -> PollOutcome:
        kind = "full" if target.detail is Detail.FULL else "summary"
        active[kind] += 1
        peak[kind] = max(peak[kind], active[kind])
        await asyncio.sleep(0.01)
        active[kind] -= 1
        return PollOutcome(target.miner_id, None, None, 0.0, 0.01, target.detail)

    targets = [PollTarget(i, None, None, Detail.FULL if i % 2 else Detail.SUMMARY)  # type: ignore[arg-type]
               for i in range(64)]  # fmt: skip
    monkeypatch.setattr(poller, "poll_one", fake_poll)
    outcomes = asyncio.run(poll_targets(None, targets, concurrency=16, deadline=1))  # type: ignore[arg-type]
    assert len(outcomes) == 64
    assert peak["full"] == 4 and peak["summary"] >= 8, peak


def test_shards_land_in_their_queues_on_the_broker(org_a: OrgWorld, settings: Any) -> None:
    """Through the real broker (Redis, not eager): each shard is a message in list poll.<k>."""
    import base64
    import json

    import redis

    from config.celery import app

    if app.conf.task_always_eager or not settings.REDIS_URL:
        pytest.skip("needs the Redis broker (REDIS_URL)")
    from fleet import tasks

    settings.FLEET_POLL_QUEUES = 2
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    miners = [due_miner(org_a, i, due) for i in range(5)]
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("poll.0", "poll.1")
    try:
        assert tasks.poll_due() == 2
        for k in (0, 1):
            (raw,) = broker.lrange(f"poll.{k}", 0, -1)
            message = json.loads(raw)
            assert message["headers"]["task"] == "fleet.poll_shard"
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            assert kwargs["queue"] == k and {i % 2 for i in args[0]} == {k}
    finally:
        broker.delete("poll.0", "poll.1")
    assert len(miners) == 5


def test_a_crashed_or_cancelled_poll_costs_only_its_miner(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet import poller

    async def fake_poll(registry: Any, target: PollTarget, *, deadline: float) -> PollOutcome:
        if target.miner_id == 1:
            raise KeyError("driver bug")
        if target.miner_id == 2:
            raise asyncio.CancelledError  # e.g. a library cancelling its own request
        return PollOutcome(target.miner_id, None, None, 0.0, 0.01)

    monkeypatch.setattr(poller, "poll_one", fake_poll)
    targets = [PollTarget(i, None, None) for i in range(4)]  # type: ignore[arg-type]
    outcomes = asyncio.run(poll_targets(None, targets, concurrency=4, deadline=1))  # type: ignore[arg-type]
    kinds = [o.error.kind if o.error else "ok" for o in outcomes]
    assert kinds == ["ok", "error", "timeout", "ok"]


def test_the_miner_loop_quiets_only_closed_tls_reports() -> None:
    from fleet import runtime

    seen: list[dict[str, Any]] = []

    class Loop:
        def default_exception_handler(self, context: dict[str, Any]) -> None:
            seen.append(context)

    closed = RuntimeError("unable to perform operation on <TCPTransport>; the handler is closed")
    runtime._quiet_closed_tls(
        Loop(), {"message": "Fatal error on SSL protocol", "exception": closed}
    )  # type: ignore[arg-type]
    other = {"message": "Task exception was never retrieved", "exception": KeyError("x")}
    runtime._quiet_closed_tls(Loop(), other)  # type: ignore[arg-type]
    assert seen == [other]
