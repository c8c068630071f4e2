"""Untrusted node reports → the typed values the ingest path takes.

Everything a node sends is checked against the ``miners`` dataclasses: JSON types exactly as
annotated (a bool is not an int, numbers are finite), strings and lists length-capped, enums
from their own values, pool URLs from an allowlist of schemes. Anything else is a
``ReportError`` and the outcome is dropped (and counted) instead of stored.
"""

from __future__ import annotations

import dataclasses
import math
import types
from enum import Enum
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from fleet.poller import PollOutcome
from miners import Detail, MinerError, MinerStatus
from miners import errors as miner_errors

MAX_STRING = 500
MAX_LIST = 256
POOL_SCHEMES = ("http://", "https://", "stratum+tcp://", "stratum2+tcp://")


class ReportError(ValueError):
    pass


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        return _coerce(args[0], value, where)
    if origin is list:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ReportError(f"{where}: expected a list of at most {MAX_LIST}")
        return [_coerce(get_args(tp)[0], v, f"{where}[]") for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise ReportError(f"{where}: expected a boolean")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise ReportError(f"{where}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportError(f"{where}: expected a number")
        if not math.isfinite(value) or abs(value) > 1e15:
            raise ReportError(f"{where}: expected a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ReportError(f"{where}: expected a string")
        return value[:MAX_STRING]
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            raise ReportError(f"{where}: unknown value") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    raise ReportError(f"{where}: not accepted from a node")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ReportError(f"{where}: expected an object")
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ReportError(f"{where}.{f.name}: required")
            continue
        values[f.name] = _coerce(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**values)


def status_from_report(data: Any) -> MinerStatus:
    status: MinerStatus = _build(MinerStatus, data, "status")
    status.pools = [p for p in status.pools if p.url.lower().startswith(POOL_SCHEMES)]
    return status


@cache
def _error_kinds() -> dict[str, type[MinerError]]:
    found: dict[str, type[MinerError]] = {}
    todo: list[type[MinerError]] = [MinerError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.kind, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_from_report(data: Any) -> MinerError:
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ReportError("error: expected {kind, message}")
    message = data.get("message")
    cls = _error_kinds().get(data["kind"], miner_errors.Unreachable)
    return cls(message[:MAX_STRING] if isinstance(message, str) else data["kind"])


def outcome_from_report(data: Any, allowed: set[int]) -> PollOutcome:
    """One ``telemetry_batch`` outcome of a miner this node owns (``allowed``)."""
    if not isinstance(data, dict):
        raise ReportError("outcome: expected an object")
    miner_id = _coerce(int, data.get("miner_id"), "miner_id")
    if miner_id not in allowed:
        raise ReportError("miner_id: not a miner of this node")
    started = _coerce(float, data.get("started"), "started")
    seconds = _coerce(float, data.get("seconds", 0.0), "seconds")
    detail = _coerce(Detail, data.get("detail", "summary"), "detail")
    raw_status, raw_error = data.get("status"), data.get("error")
    if (raw_status is None) == (raw_error is None):
        raise ReportError("outcome: exactly one of status and error")
    status = status_from_report(raw_status) if raw_status is not None else None
    error = error_from_report(raw_error) if raw_error is not None else None
    return PollOutcome(miner_id, status, error, started, seconds, detail)
