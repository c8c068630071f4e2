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
from collections.abc import Callable
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


Coerce = Callable[[Any, str], Any]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    return _coercer(tp)(value, where)


@cache
def _coercer(tp: Any) -> Coerce:
    """The check of one annotated type, worked out once per type (every report of every
    miner goes through these)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) < len(get_args(tp))
        first = args[0]

        def union(value: Any, where: str) -> Any:
            if value is None and optional:
                return None
            return _coercer(first)(value, where)

        return union
    if origin is list:
        item = get_args(tp)[0]

        def many(value: Any, where: str) -> Any:
            if not isinstance(value, list) or len(value) > MAX_LIST:
                raise ReportError(f"{where}: expected a list of at most {MAX_LIST}")
            one, inner = _coercer(item), f"{where}[]"
            return [one(v, inner) for v in value]

        return many
    if isinstance(tp, type) and issubclass(tp, Enum):
        enum = tp

        def member(value: Any, where: str) -> Any:
            try:
                return enum(value)
            except ValueError:
                raise ReportError(f"{where}: unknown value") from None

        return member
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        return lambda value, where: _build(cls, value, where)
    return _SCALARS.get(tp, _refused)


def _boolean(value: Any, where: str) -> Any:
    if not isinstance(value, bool):
        raise ReportError(f"{where}: expected a boolean")
    return value


def _integer(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        raise ReportError(f"{where}: expected an integer")
    return value


def _number(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(f"{where}: expected a number")
    if not math.isfinite(value) or abs(value) > 1e15:
        raise ReportError(f"{where}: expected a finite number")
    return float(value)


def _string(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        raise ReportError(f"{where}: expected a string")
    return value[:MAX_STRING]


def _refused(value: Any, where: str) -> Any:
    raise ReportError(f"{where}: not accepted from a node")


_SCALARS: dict[Any, Coerce] = {bool: _boolean, int: _integer, float: _number, str: _string}


@cache
def _plan(cls: type) -> list[tuple[str, bool, Any]]:
    """(name, required, annotated type) of each field of ``cls``."""
    hints = get_type_hints(cls)
    return [
        (
            f.name,
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            hints[f.name],
        )
        for f in dataclasses.fields(cls)
    ]


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ReportError(f"{where}: expected an object")
    values = {}
    for name, required, tp in _plan(cls):
        if name not in data:
            if required:
                raise ReportError(f"{where}.{name}: required")
            continue
        values[name] = _coercer(tp)(data[name], f"{where}.{name}")
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
