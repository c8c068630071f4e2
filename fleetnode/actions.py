"""Miner actions the server sends as commands, run through the same ``miners`` drivers and
the same parameter cleaners (``miners.actions``) the server uses for cloud-paired miners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetnode.assignment import AssignedMiner, AssignmentError, open_credentials
from miners import Credentials, MinerError, Registry
from miners.actions import ACTIONS, ActionError

CALL_TIMEOUT = 20.0
MAX_LOG_LINES = 2000
MAX_LOG_LINE = 2000


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    status: str  # "ok" | "failed" | "rejected"
    result: dict[str, Any]
    error: str = ""


def _rejected(message: str, result: dict[str, Any] | None = None) -> ActionOutcome:
    return ActionOutcome("rejected", result or {}, message)


def _clean_logs(params: dict[str, Any]) -> tuple[int, str | None]:
    unknown = sorted(set(params) - {"lines", "source"})
    if unknown:
        raise ActionError({name: ["Not a parameter of this action."] for name in unknown})
    lines, source = params.get("lines", 200), params.get("source")
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_LOG_LINES:
        raise ActionError({"lines": [f"A whole number from 1 to {MAX_LOG_LINES}."]})
    if source is not None and (not isinstance(source, str) or len(source) > 100):
        raise ActionError({"source": ["A log name (at most 100 characters)."]})
    return lines, source


async def run_action(
    registry: Registry,
    kind: str,
    payload: dict[str, Any],
    miners: dict[int, AssignedMiner],
    *,
    node_key: bytes | None,
    node_id: int,
) -> ActionOutcome:
    miner_id, params = payload.get("miner_id"), payload.get("params", {})
    miner = miners.get(miner_id) if isinstance(miner_id, int) else None
    if miner is None:
        return _rejected(f"miner {str(miner_id)[:20]} is not assigned to this node")
    if not isinstance(params, dict):
        return _rejected("params is not an object")
    try:
        if kind == "download_logs":
            lines, source = _clean_logs(params)
            cleaned: dict[str, Any] = {}
        else:
            cleaned = ACTIONS[kind].clean(params)
        credentials = open_credentials(miner, node_key=node_key, node_id=node_id)
    except ActionError as exc:
        return _rejected(f"check the action's parameters: {exc}", {"errors": exc.errors})
    except AssignmentError as exc:
        return ActionOutcome("failed", {"error_kind": "auth_failed"}, str(exc))
    driver = registry.get(miner.info.driver)
    credentials = credentials or driver.default_credentials or Credentials(password="")
    device = driver.connect(miner.info, credentials, timeout=CALL_TIMEOUT)
    try:
        if kind == "download_logs":
            content = await device.logs(lines, source)
            return ActionOutcome(
                "ok", {"lines": [line[:MAX_LOG_LINE] for line in content[-lines:]]}
            )
        await ACTIONS[kind].call(device, cleaned)
        return ActionOutcome("ok", {})
    except MinerError as exc:
        return ActionOutcome(
            "failed", {"error_kind": exc.kind, "code": exc.code}, f"{exc.kind}: {exc.message}"
        )
    finally:
        await device.close()
