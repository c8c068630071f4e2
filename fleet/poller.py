"""Polling many miners at once: bounded concurrency, a deadline per miner. No Django here.

The shard task loads ``PollTarget``s, runs ``poll_targets`` on one event loop, and hands the
``PollOutcome``s to the one ingest service. A slow or dead miner costs at most its own
deadline and one concurrency slot; it never delays the others. A shard has a budget too: at
its end the polls still running become ``Timeout`` outcomes and everything that finished is
kept, so an overrun never throws away a whole shard.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from miners import Credentials, Detail, DeviceInfo, MinerError, MinerStatus, Registry
from miners.errors import Timeout

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
DEFAULT_DEADLINE = 8.0
# A FULL status is ~10 requests (boards, fans, PSUs, pools...) against a summary's 1-3: they get
# a quarter of the shard's slots, so a cold start doesn't open every rig's connections at once.
FULL_SHARE = 4
CANCEL_GRACE = 1.0  # seconds the polls cut off at the budget get to close their connections


@dataclass(frozen=True, slots=True)
class PollTarget:
    miner_id: int
    info: DeviceInfo
    credentials: Credentials | None
    detail: Detail = Detail.SUMMARY


@dataclass(frozen=True, slots=True)
class PollOutcome:
    miner_id: int
    status: MinerStatus | None
    error: MinerError | None
    started: float
    seconds: float
    detail: Detail = Detail.SUMMARY


async def poll_one(registry: Registry, target: PollTarget, *, deadline: float) -> PollOutcome:
    started = time.time()
    clock = time.monotonic()
    driver = registry.get(target.info.driver)
    credentials = target.credentials or driver.default_credentials or Credentials(password="")
    device = driver.connect(target.info, credentials, timeout=deadline)
    try:
        # a timeout scope, not wait_for: no inner task whose error nobody reads when the shard's
        # budget cancels this poll
        async with asyncio.timeout(deadline + 0.5):
            status = await device.status(target.detail)
    except MinerError as exc:
        return PollOutcome(target.miner_id, None, exc, started, time.monotonic() - clock)
    except TimeoutError:
        error = Timeout(f"no status within {deadline:g} s")
        return PollOutcome(target.miner_id, None, error, started, time.monotonic() - clock)
    finally:
        await device.close()
    return PollOutcome(
        target.miner_id, status, None, started, time.monotonic() - clock, target.detail
    )


def shard_budget(targets: Sequence[PollTarget], *, concurrency: int, deadline: float) -> float:
    """Seconds a shard may take: one deadline per wave of polls, FULL reads (a quarter of the
    slots) counted apart from summaries."""
    full = sum(1 for t in targets if t.detail is Detail.FULL)
    waves = math.ceil(full / full_slots(concurrency)) + math.ceil(
        (len(targets) - full) / max(1, concurrency)
    )
    return deadline * max(1, waves) + 1.0


def full_slots(concurrency: int) -> int:
    return max(1, concurrency // FULL_SHARE)


async def poll_targets(
    registry: Registry,
    targets: Iterable[PollTarget],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float = DEFAULT_DEADLINE,
    budget: float | None = None,
) -> list[PollOutcome]:
    """Poll every target; after ``budget`` seconds (default ``shard_budget``) the polls still
    running or waiting for a slot are cancelled and come back as ``Timeout`` outcomes."""
    targets = list(targets)
    gate = asyncio.Semaphore(concurrency)
    full_gate = asyncio.Semaphore(full_slots(concurrency))
    if budget is None:
        budget = shard_budget(targets, concurrency=concurrency, deadline=deadline)

    async def bounded(target: PollTarget) -> PollOutcome:
        if target.detail is Detail.FULL:
            async with full_gate, gate:
                return await poll_one(registry, target, deadline=deadline)
        async with gate:
            return await poll_one(registry, target, deadline=deadline)

    started, clock = time.time(), time.monotonic()
    tasks = [asyncio.ensure_future(bounded(t)) for t in targets]
    if not tasks:
        return []
    _done, pending = await asyncio.wait(tasks, timeout=budget)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE)
        for task in pending:  # a poll may end with its own error as it is cut: read it
            if task.done() and not task.cancelled():
                task.exception()
    cut = Timeout(f"shard budget of {budget:g} s spent before this poll finished")
    return [
        _outcome(target, task, task in _done, cut, started, time.monotonic() - clock)
        for target, task in zip(targets, tasks, strict=True)
    ]


def _outcome(
    target: PollTarget,
    task: asyncio.Task[PollOutcome],
    finished: bool,
    cut: MinerError,
    started: float,
    seconds: float,
) -> PollOutcome:
    """A finished poll's outcome; a poll cut at the budget (or cancelled from inside) is a
    timeout; one that crashed is an error of that miner alone, logged, never the shard's."""
    if finished and not task.cancelled():
        exc = task.exception()
        if exc is None:
            return task.result()
        log.error("poll of miner %s crashed", target.miner_id, exc_info=exc)
        crashed = MinerError(f"poll crashed: {type(exc).__name__}")
        return PollOutcome(target.miner_id, None, crashed, started, seconds)
    return PollOutcome(target.miner_id, None, cut, started, seconds)
