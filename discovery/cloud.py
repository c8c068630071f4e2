"""A run from the server: ``miners.scan`` over the run's checked scope, results ingested in
small batches as they stream in, progress stored in the run (a reload shows it) and published.

The scan runs on its own event loop in a helper thread; this thread does the database work,
so the ORM never runs inside an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import Counter

from discovery import services
from discovery.models import DiscoveryRun, Outcome
from fleet import dial
from miners.scan import Found, scan

FLUSH_S = 0.5
FLUSH_DEVICES = 64
_END = object()


def run_in_cloud(run: DiscoveryRun) -> DiscoveryRun | None:
    pairs = [(a, p) for a in run.addresses for p in run.ports]
    deadline = min(services.CLOUD_RUN_MAX_S, 60 + len(pairs) // 256 * 8)
    if not services.run_start(run, deadline_s=deadline):
        return run
    inbox: queue.Queue[object] = queue.Queue(maxsize=4096)
    probed = [0]
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = []

    def progress(n: int) -> None:
        probed[0] = n

    async def produce() -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append((asyncio.get_running_loop(), task))
        async with contextlib.aclosing(scan(pairs, progress=progress)) as found:
            async for item in found:
                await asyncio.to_thread(inbox.put, item)  # a slow database holds the scan back

    def worker() -> None:
        try:
            asyncio.run(produce())
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the consumer reports it as the run's failure
            inbox.put(exc)
        finally:
            inbox.put(_END)

    thread = threading.Thread(target=worker, name=f"discovery-run-{run.pk}", daemon=True)
    thread.start()
    drivers = dial.driver_names()
    batch: list[Found] = []
    last = time.monotonic()
    failure: BaseException | None = None
    ends_at = time.monotonic() + deadline
    while True:
        try:
            item = inbox.get(timeout=FLUSH_S)
        except queue.Empty:
            item = None
        if isinstance(item, Found):
            batch.append(item)
        elif isinstance(item, BaseException):
            failure = item
        done = item is _END
        if done or len(batch) >= FLUSH_DEVICES or time.monotonic() - last >= FLUSH_S:
            _flush(run, batch, drivers, probed[0])
            batch, last = [], time.monotonic()
        if done:
            break
        if time.monotonic() > ends_at:
            for loop, task in running:  # cancelling the consumer stops every worker
                loop.call_soon_threadsafe(task.cancel)
            return services.run_finish(
                run.pk, Outcome.TIMEOUT, error="The scan did not finish in time."
            )
    if failure is not None:
        return services.run_finish(run.pk, Outcome.FAILED, error=f"The scan failed: {failure}")
    return services.run_finish(run.pk, Outcome.OK)


def _flush(run: DiscoveryRun, batch: list[Found], drivers: list[str], probed: int) -> None:
    run.refresh_from_db(fields=["found", "probed", "rejected"])
    accepted, dropped = services.found_checked(
        run, (f.to_dict() for f in batch), drivers=drivers, quota_used=run.found
    )
    if accepted or dropped or probed > run.probed:
        services.devices_ingest(run, accepted, node=None, rejected=Counter(dropped), probed=probed)
