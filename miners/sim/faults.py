"""Per-miner fault injection, shared by the Python API and the `--control` HTTP API.

Faults are plain dicts on the miner (`Miner.faults`) that the protocol handlers consult on
every request; only `offline` needs the fleet's help, to close and reopen listening sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from miners.sim.clock import Clock
from miners.sim.state import Miner


class FaultError(ValueError):
    """An unknown fault kind, host or parameter (the control API answers 400/404 with it)."""


def _int_param(name: str, low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FaultError(f"{name} must be an integer")
        try:
            number = int(value)
        except ValueError:
            raise FaultError(f"{name} must be an integer") from None
        if not low <= number <= high:
            raise FaultError(f"{name} must be between {low} and {high}")
        return number

    return check


def _choice(name: str, *options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise FaultError(f"{name} must be one of {', '.join(options)}")
        return str(value)

    return check


# kind -> {param: (validator, default)}
FAULT_KINDS: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "offline": {},
    "slow": {"ms": (_int_param("ms", 0, 600_000), 2000)},
    "http500": {},
    "garbage": {"bytes": (_int_param("bytes", 1, 65536), 64)},
    "wrong_password": {},
    "overheat": {"severity": (_choice("severity", "degraded", "error"), "degraded")},
    "dead_board": {"board": (_int_param("board", 0, 63), 0)},
    "dead_pool": {},
    "psu_fault": {"psu": (_int_param("psu", 0, 7), 0)},
}


class FaultInjector:
    """Set and clear faults by host; `on_offline(miner, bool)` (re)binds the miner's sockets."""

    def __init__(
        self,
        lookup: Callable[[str], Miner | None],
        on_offline: Callable[[Miner, bool], None],
        clock: Clock,
    ) -> None:
        self._lookup = lookup
        self._on_offline = on_offline
        self._clock = clock

    def _miner(self, host: str) -> Miner:
        miner = self._lookup(host)
        if miner is None:
            raise FaultError(f"no simulated miner at {host}")
        return miner

    def set(self, host: str, kind: str, **params: Any) -> dict[str, Any]:
        """Activate (or re-parameterise) a fault; returns the stored parameters."""
        spec = FAULT_KINDS.get(kind)
        if spec is None:
            raise FaultError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        unknown = set(params) - set(spec)
        if unknown:
            raise FaultError(f"fault {kind} takes no parameter {', '.join(sorted(unknown))}")
        miner = self._miner(host)
        values = {
            name: check(params[name]) if name in params else default
            for name, (check, default) in spec.items()
        }
        now = self._clock.now()
        miner.settle(now)
        if miner.faults is None:
            miner.faults = {}
        was_offline = "offline" in miner.faults
        values["since"] = int(now)
        miner.faults[kind] = values
        if kind == "wrong_password":
            miner.revoke_tokens()
        if kind == "offline" and not was_offline:
            self._on_offline(miner, True)
        return values

    def clear(self, host: str, kind: str | None = None) -> None:
        """Remove one fault, or all of them when `kind` is None."""
        miner = self._miner(host)
        if kind is not None and kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault {kind!r}")
        if not miner.faults:
            return
        miner.settle(self._clock.now())
        was_offline = "offline" in miner.faults
        if kind is None:
            miner.faults = None
        else:
            miner.faults.pop(kind, None)
            if not miner.faults:
                miner.faults = None
        if was_offline and not miner.has_fault("offline"):
            self._on_offline(miner, False)

    def get(self, host: str) -> Mapping[str, dict[str, Any]]:
        return dict(self._miner(host).faults or {})
