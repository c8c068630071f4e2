"""The miner actions: their permission, capability, parameter checks and device call.

Shared by the server (``fleet``, which authorizes with ``permission`` and turns
``ActionError``'s field errors into a 400) and the fleet node (which runs the same cleaner and
call on the commands it receives), so both sides read an action's parameters the same way."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from miners.base import Device
from miners.types import Capability, CoolingMode, PoolConfig, PowerMode

POOL_SCHEMES = ("stratum+tcp://", "stratum2+tcp://")
POOL_URL_PATTERN = r"^(stratum\+tcp|stratum2\+tcp)://[A-Za-z0-9.-]{1,253}(:\d{1,5})?/?$"
_POOL_URL = re.compile(POOL_URL_PATTERN)
_TEMPLATE_KEYS = frozenset({"site", "name", "serial", "mac", "host", "rack", "position"})
# The worker templates the cleaner takes, as a pattern for the API schema: not blank, and each
# ``{word}`` one of the known keys. No lookarounds (schema fuzzers can't draw from them): a
# "brace" is ``{`` runs of word characters ending in a known ``{key}`` or in a character
# that can't close a placeholder; ``{word`` runs may also end the string. Python's ``\s`` and
# ``\w``, as the cleaner's (tests/test_schema_truth.py compares them exhaustively).
_BRACE = r"(?:\{\w*)*(?:\{(?:" + "|".join(sorted(_TEMPLATE_KEYS)) + r")\}|\{\w*[^\w{}])"
WORKER_PATTERN = rf"^\s*(?:(?:[^{{\s]|{_BRACE})(?:[^{{]|{_BRACE})*(?:\{{\w*)*|(?:\{{\w*)+)$"


class ActionError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


Params = dict[str, Any]
Call = Callable[[Device, Params], Awaitable[None]]


@dataclass(frozen=True)
class Action:
    kind: str
    permission: str
    capabilities: frozenset[Capability]  # any of them will do
    clean: Callable[[Mapping[str, Any]], Params]
    call: Call


def _bool(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise ActionError({name: ["Must be true or false."]})
    return value


def _int(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ActionError({name: [f"A whole number from {low} to {high}."]})
    return value


def _only(params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ActionError({name: ["Not a parameter of this action."] for name in unknown})


def _no_params(params: Mapping[str, Any]) -> Params:
    _only(params, set())
    return {}


def _clean_blink(params: Mapping[str, Any]) -> Params:
    _only(params, {"on", "seconds"})
    return {"on": _bool(params, "on", True), "seconds": _int(params, "seconds", 1, 3600)}


def _clean_power(params: Mapping[str, Any]) -> Params:
    _only(params, {"watts", "mode"})
    watts = _int(params, "watts", 100, 30_000)
    mode = params.get("mode")
    if (watts is None) == (mode is None):
        raise ActionError({"non_field_errors": ["Give either watts or mode."]})
    if mode is not None and (not isinstance(mode, str) or mode not in {m.value for m in PowerMode}):
        raise ActionError({"mode": [f"One of {', '.join(m.value for m in PowerMode)}."]})
    return {"watts": watts, "mode": mode}


def _clean_pool(pool: Any, index: int) -> dict[str, str]:
    if not isinstance(pool, Mapping):
        raise ActionError({f"pools.{index}": ["Each pool is an object {url, user, password}."]})
    _only({k: v for k, v in pool.items()}, {"url", "user", "password", "authority_pubkey"})
    url, user = pool.get("url"), pool.get("user")
    if not isinstance(url, str) or not _POOL_URL.match(url.strip()):
        raise ActionError(
            {f"pools.{index}.url": ["A stratum+tcp:// or stratum2+tcp:// URL: host[:port]."]}
        )
    if not isinstance(user, str) or not user.strip() or len(user) > 200:
        raise ActionError({f"pools.{index}.user": ["The worker name (at most 200 characters)."]})
    for name in ("password", "authority_pubkey"):
        if not isinstance(pool.get(name, ""), str) or len(pool.get(name, "")) > 200:
            raise ActionError({f"pools.{index}.{name}": ["A string (at most 200 characters)."]})
    for key in re.findall(r"{(\w*)}", user):
        if key not in _TEMPLATE_KEYS:
            raise ActionError(
                {
                    f"pools.{index}.user": [
                        f"Unknown placeholder {{{key}}}; use {sorted(_TEMPLATE_KEYS)}."
                    ]
                }
            )
    return {
        "url": url.strip(),
        "user": user.strip(),
        "password": pool.get("password", ""),
        "authority_pubkey": pool.get("authority_pubkey", ""),
    }


def _clean_pools(params: Mapping[str, Any]) -> Params:
    _only(params, {"pools"})
    pools = params.get("pools")
    if not isinstance(pools, list) or not 1 <= len(pools) <= 3:
        raise ActionError({"pools": ["One to three pools, primary first."]})
    return {"pools": [_clean_pool(p, i) for i, p in enumerate(pools)]}


def _clean_cooling(params: Mapping[str, Any]) -> Params:
    _only(params, {"mode", "speed_percent", "target_temp_c"})
    mode = params.get("mode")
    if not isinstance(mode, str) or mode not in {m.value for m in CoolingMode}:
        raise ActionError({"mode": [f"One of {', '.join(m.value for m in CoolingMode)}."]})
    speed = _int(params, "speed_percent", 0, 100)
    if mode == CoolingMode.MANUAL.value and speed is None:
        # every firmware needs the fixed speed for manual (the rig answers 400 without it)
        raise ActionError({"speed_percent": ["Manual mode needs a fan speed (0 to 100 %)."]})
    return {
        "mode": mode,
        "speed_percent": speed,
        "target_temp_c": _int(params, "target_temp_c", 20, 100),
    }


def render_worker(template: str, values: Mapping[str, str]) -> str:
    """``{site}.{name}`` → ``north.A-01`` (placeholders were checked by the cleaner)."""
    return re.sub(r"{(\w+)}", lambda m: re.sub(r"\s+", "-", values.get(m.group(1), "")), template)


async def _set_pools(device: Device, params: Params) -> None:
    await device.set_pools(
        [
            PoolConfig(
                p["url"], p["user"], p.get("password", ""), authority_pubkey=p["authority_pubkey"]
            )
            for p in params["pools"]
        ]
    )


async def _power(device: Device, params: Params) -> None:
    if params.get("watts") is not None:
        await device.set_power_target(watts=params["watts"])
    else:
        await device.set_power_target(mode=PowerMode(params["mode"]))


async def _cooling(device: Device, params: Params) -> None:
    target = params.get("target_temp_c")
    await device.set_cooling(
        CoolingMode(params["mode"]),
        speed_percent=params.get("speed_percent"),
        target_temp_c=float(target) if target is not None else None,
    )


async def _reboot(device: Device, params: Params) -> None:
    await device.reboot()


async def _blink(device: Device, params: Params) -> None:
    await device.blink(params["on"], params["seconds"])


async def _start(device: Device, params: Params) -> None:
    await device.start_mining()


async def _stop(device: Device, params: Params) -> None:
    await device.stop_mining()


def _caps(*caps: Capability) -> frozenset[Capability]:
    return frozenset(caps)


ACTIONS: dict[str, Action] = {
    a.kind: a
    for a in (
        Action("reboot", "miner:reboot", _caps(Capability.REBOOT), _no_params, _reboot),
        Action("blink", "miner:blink_led", _caps(Capability.BLINK), _clean_blink, _blink),
        Action(
            "start_mining", "miner:start_mining", _caps(Capability.START_MINING), _no_params, _start
        ),
        Action(
            "stop_mining", "miner:stop_mining", _caps(Capability.STOP_MINING), _no_params, _stop
        ),
        Action(
            "set_power_target",
            "miner:set_power_target",
            _caps(Capability.POWER_TARGET_WATTS, Capability.POWER_MODE),
            _clean_power,
            _power,
        ),
        Action(
            "set_pools", "miner:update_pools", _caps(Capability.POOLS), _clean_pools, _set_pools
        ),
        Action(
            "set_cooling",
            "miner:set_cooling_mode",
            _caps(Capability.COOLING),
            _clean_cooling,
            _cooling,
        ),
    )
}


def needed_capability(action: Action, params: Params) -> Capability | None:
    """The one capability these params need (power target: watts vs mode)."""
    if action.kind == "set_power_target":
        return (
            Capability.POWER_TARGET_WATTS
            if params.get("watts") is not None
            else Capability.POWER_MODE
        )
    return next(iter(action.capabilities), None)
