"""Polling many miners at once: bounded concurrency, a deadline per miner. No Django here.

The shard task loads ``PollTarget``s, runs ``poll_targets`` on one event loop, and hands the
``PollOutcome``s to the one ingest service. A slow or dead miner costs at most its own
deadline and one concurrency slot; it never delays the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from miners import Credentials, Detail, DeviceInfo, MinerError, MinerStatus, Registry
from miners.errors import Timeout

DEFAULT_CONCURRENCY = 256
DEFAULT_DEADLINE = 8.0


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
        status = await asyncio.wait_for(device.status(target.detail), deadline + 0.5)
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


async def poll_targets(
    registry: Registry,
    targets: Iterable[PollTarget],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float = DEFAULT_DEADLINE,
) -> list[PollOutcome]:
    gate = asyncio.Semaphore(concurrency)

    async def bounded(target: PollTarget) -> PollOutcome:
        async with gate:
            return await poll_one(registry, target, deadline=deadline)

    tasks: Sequence[asyncio.Task[PollOutcome]] = [
        asyncio.ensure_future(bounded(t)) for t in targets
    ]
    return list(await asyncio.gather(*tasks))
