"""Polling the assigned miners on the LAN: bounded concurrency, a deadline per miner, a full
status every ``FULL_EVERY_S`` and cheap summaries between (as the cloud poller does).

Outcomes have the ``telemetry_batch`` shape of ``docs/protocol.md``; they go into the
on-disk buffer, and the client sends them from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fleetnode.assignment import AssignedMiner, AssignmentError, open_credentials
from miners import Credentials, Detail, MinerError, Registry

log = logging.getLogger("fleetnode.poller")

DEFAULT_CONCURRENCY = 64
DEFAULT_DEADLINE = 8.0
FULL_EVERY_S = 60.0


def _outcome(
    miner_id: int,
    started: float,
    seconds: float,
    detail: Detail,
    status: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "miner_id": miner_id,
        "started": started,
        "seconds": round(seconds, 3),
        "detail": str(detail),
        "status": status,
        "error": error,
    }


async def poll_miner(
    registry: Registry,
    miner: AssignedMiner,
    detail: Detail,
    *,
    node_key: bytes | None,
    node_id: int,
    deadline: float = DEFAULT_DEADLINE,
    identify: bool = False,
) -> dict[str, Any]:
    """One poll; with ``identify`` (a miner's first successful poll here) the outcome also
    carries its ``identity``."""
    started, clock = time.time(), time.monotonic()
    try:
        credentials = open_credentials(miner, node_key=node_key, node_id=node_id)
    except AssignmentError as exc:
        error = {"kind": "auth_failed", "message": str(exc)}
        return _outcome(miner.miner_id, started, 0.0, detail, None, error)
    driver = registry.get(miner.info.driver)
    credentials = credentials or driver.default_credentials or Credentials(password="")
    device = driver.connect(miner.info, credentials, timeout=deadline)
    try:
        status = await asyncio.wait_for(device.status(detail), deadline + 0.5)
    except MinerError as exc:
        error = {"kind": exc.kind, "message": exc.message[:500]}
        return _outcome(miner.miner_id, started, time.monotonic() - clock, detail, None, error)
    except TimeoutError:
        error = {"kind": "timeout", "message": f"no status within {deadline:g} s"}
        return _outcome(miner.miner_id, started, time.monotonic() - clock, detail, None, error)
    except Exception as exc:  # a driver bug must not stop the node polling the others
        log.exception("driver %s failed on miner %s", miner.info.driver, miner.miner_id)
        error = {"kind": "error", "message": f"driver error: {type(exc).__name__}"}
        return _outcome(miner.miner_id, started, time.monotonic() - clock, detail, None, error)
    finally:
        await device.close()
    outcome = _outcome(
        miner.miner_id, started, time.monotonic() - clock, detail, status.to_dict(), None
    )
    if identify:
        found = await _identity(driver, miner, credentials, deadline)
        if found:
            outcome["identity"] = found
    return outcome


async def _identity(
    driver: Any, miner: AssignedMiner, credentials: Credentials, deadline: float
) -> dict[str, str]:
    """Who the miner says it is (make, model, firmware, serial, MAC, hostname): the server
    stores it on the miner, as it does for the miners it identified itself."""
    try:
        info = await driver.identify(
            miner.info.host, miner.info.port, timeout=deadline, credentials=credentials
        )
    except Exception:  # identity is a nicety: never let it cost the status
        log.debug("identify of miner %s failed", miner.miner_id, exc_info=True)
        return {}
    if info is None:
        return {}
    fields = ("make", "model", "firmware", "serial", "mac", "hostname")
    return {name: str(getattr(info, name)) for name in fields if getattr(info, name)}


class Poller:
    """One cycle at a time over the current assignment; remembers when each miner last had a
    full status so a restart or a new assignment starts with full ones."""

    def __init__(
        self,
        registry: Registry,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.registry = registry
        self.gate = asyncio.Semaphore(max(1, concurrency))
        self.deadline = deadline
        self._last_full: dict[int, float] = {}
        self._identified: set[int] = set()  # miners whose identity went out with a poll

    def _detail(self, miner_id: int, now: float) -> Detail:
        if now - self._last_full.get(miner_id, float("-inf")) >= FULL_EVERY_S:
            self._last_full[miner_id] = now
            return Detail.FULL
        return Detail.SUMMARY

    async def cycle(
        self, miners: dict[int, AssignedMiner], *, node_key: bytes | None, node_id: int
    ) -> list[dict[str, Any]]:
        now = time.monotonic()
        self._last_full = {k: v for k, v in self._last_full.items() if k in miners}

        async def bounded(miner: AssignedMiner) -> dict[str, Any]:
            detail = self._detail(miner.miner_id, now)
            known = bool(miner.info.model and (miner.info.mac or miner.info.serial))
            async with self.gate:
                outcome = await poll_miner(
                    self.registry,
                    miner,
                    detail,
                    node_key=node_key,
                    node_id=node_id,
                    deadline=self.deadline,
                    identify=not known and miner.miner_id not in self._identified,
                )
            if outcome["status"] is not None:
                self._identified.add(miner.miner_id)
            return outcome

        return list(await asyncio.gather(*(bounded(m) for m in miners.values())))
