"""ProtoOS bearer-token routes: mining, pools, cooling, system actions and the telemetry reads.

Validation mirrors firmware: a body of the wrong shape is 400 INVALID_REQUEST, a well-formed but
unacceptable value is 422 (OUT_OF_RANGE for numbers), an unsupported cooling mode is 501.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from miners.sim import proto_payloads as payloads
from miners.sim.state import Pool
from miners.sim.web import Call, Handler, HttpError, Router, json_response, message

MAX_POOLS = 3
POOL_SCHEMES = ("stratum+tcp", "stratum2+tcp")
COOLING_MODES = ("Off", "Auto", "Manual")
TELEMETRY_LEVELS = {"miner", "hashboard", "psu", "asic"}
LOG_SOURCES = ("os", "pool_sw", "miner_sw", "miner_web_server")
MAX_LOG_LINES = 10000
MAX_TAG_BYTES = 10240
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SV2_KEY_VERSION = b"\x01\x00"


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool) -> Any:
    """A typed body field; bools never pass for numbers (JSON true is not 1 here)."""
    if name not in data or data[name] is None:
        if required:
            raise HttpError(400, "INVALID_REQUEST", f"{name} is required")
        return None
    value = data[name]
    if isinstance(value, bool) and kind is not bool:
        raise HttpError(400, "INVALID_REQUEST", f"{name} has the wrong type")
    if not isinstance(value, kind):
        raise HttpError(400, "INVALID_REQUEST", f"{name} has the wrong type")
    return value


def _query_int(call: Call, name: str, default: int) -> int:
    raw = call.request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise HttpError(400, "INVALID_REQUEST", f"{name} must be an integer") from None


def _query_bool(call: Call, name: str, default: bool) -> bool:
    raw = call.request.query.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise HttpError(400, "INVALID_REQUEST", f"{name} must be true or false")


# -- mining ----------------------------------------------------------------------------------


async def mining(call: Call) -> web.StreamResponse:
    body = payloads.mining_status(call.miner, call.now)
    if body is None:
        return web.Response(status=204)
    return json_response(body)


async def get_target(call: Call) -> web.Response:
    return json_response(payloads.mining_target(call.miner))


async def put_target(call: Call) -> web.Response:
    data = await call.body_object()
    m = call.miner
    watts = _field(data, "power_target_watts", (int, float), False)
    mode = _field(data, "performance_mode", str, False)
    bays = _field(data, "balance_bays", bool, False)
    on_disconnect = _field(data, "hash_on_disconnect", bool, False)
    if mode is not None and mode not in ("MaximumHashrate", "Efficiency"):
        raise HttpError(
            422, "INVALID_REQUEST", "performance_mode must be MaximumHashrate or Efficiency"
        )
    if watts is not None and not m.model.min_w <= watts <= m.model.max_w:
        raise HttpError(
            422,
            "OUT_OF_RANGE",
            f"power_target_watts must be between {m.model.min_w} and {m.model.max_w}",
        )
    m.settle(call.now)
    if watts is not None:
        m.power_target_w = int(watts)
    if mode is not None:
        m.performance_mode = mode
    if bays is not None:
        m.set_setting("balance_bays", bays)
    if on_disconnect is not None:
        m.set_setting("hash_on_disconnect", on_disconnect)
    return json_response(payloads.mining_target(m))


async def start(call: Call) -> web.Response:
    call.miner.set_mining(True, call.now)
    return message("Mining start requested", 202)


async def stop(call: Call) -> web.Response:
    call.miner.set_mining(False, call.now)
    return message("Mining stop requested", 202)


# -- pools -----------------------------------------------------------------------------------


def _pool_url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise HttpError(400, "INVALID_REQUEST", "url is required")
    parts = urlsplit(value)
    if parts.scheme not in POOL_SCHEMES or not parts.hostname:
        raise HttpError(
            422, "INVALID_REQUEST", f"url must be {' or '.join(POOL_SCHEMES)}://host[:port]"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise HttpError(422, "INVALID_REQUEST", "url has an invalid port") from None
    return value


def _base58check(text: str) -> bytes | None:
    """The payload of a Base58Check string, or None when it isn't one."""
    number = 0
    for char in text:
        digit = BASE58.find(char)
        if digit < 0:
            return None
        number = number * 58 + digit
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\0" * (len(text) - len(text.lstrip("1"))) + raw
    payload, checksum = raw[:-4], raw[-4:]
    if len(raw) < 5 or hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        return None
    return payload


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authority_key(url: str, data: dict[str, Any]) -> str:
    """`v2_authority_pubkey`: required for a remote Stratum V2 pool (the firmware refuses to
    connect to one it can't authenticate); Base58Check of version 01 00 + a 32-byte x-only
    key. Loopback development endpoints may leave it empty."""
    key = _field(data, "v2_authority_pubkey", str, False) or ""
    if not url.startswith("stratum2+tcp://"):
        return key
    if not key:
        if _loopback(urlsplit(url).hostname or ""):
            return key
        raise HttpError(
            422, "INVALID_REQUEST", "v2_authority_pubkey is required for a remote Stratum V2 pool"
        )
    payload = _base58check(key)
    if payload is None or len(payload) != 34 or payload[:2] != SV2_KEY_VERSION:
        raise HttpError(
            422,
            "INVALID_REQUEST",
            "v2_authority_pubkey must be Base58Check of key version 1 and a 32-byte x-only key",
        )
    return key


def _pool_from(data: Any, default_priority: int) -> Pool:
    if not isinstance(data, dict):
        raise HttpError(400, "INVALID_REQUEST", "each pool must be a JSON object")
    url = _pool_url(data.get("url"))
    user = _field(data, "username", str, True)
    password = _field(data, "password", str, False) or ""
    priority = _field(data, "priority", int, False)
    name = _field(data, "name", str, False) or ""
    key = _authority_key(url, data)
    return Pool(url, user, password, default_priority if priority is None else priority, name, key)


def _check_priorities(pools: list[Pool]) -> None:
    priorities = [p.priority for p in pools]
    if len(set(priorities)) != len(priorities) or any(p < 0 for p in priorities):
        raise HttpError(422, "INVALID_REQUEST", "pool priorities must be unique and >= 0")


async def get_pools(call: Call) -> web.Response:
    return json_response(payloads.pools_list(call.miner, call.now))


async def post_pools(call: Call) -> web.Response:
    data = await call.body()
    if not isinstance(data, list):
        raise HttpError(400, "INVALID_REQUEST", "request body must be a JSON array of pools")
    if len(data) > MAX_POOLS:
        raise HttpError(422, "INVALID_REQUEST", f"at most {MAX_POOLS} pools can be configured")
    pools = [_pool_from(item, i) for i, item in enumerate(data)]
    _check_priorities(pools)
    call.miner.set_pools(pools, call.now)
    return message("Pools updated")


def _pool_id(call: Call) -> int:
    try:
        pool_id = int(call.params["id"])
    except ValueError:
        raise HttpError(400, "INVALID_REQUEST", "pool id must be an integer") from None
    if not 0 <= pool_id < len(call.miner.pools):
        raise HttpError(422, "INVALID_REQUEST", f"no pool with id {pool_id}")
    return pool_id


async def get_pool(call: Call) -> web.Response:
    return json_response({"pool": payloads.pool_entry(call.miner, _pool_id(call), call.now)})


async def put_pool(call: Call) -> web.Response:
    pool_id = _pool_id(call)
    data = await call.body_object()
    m = call.miner
    current = m.pools[pool_id]
    merged = {
        "url": current.url,
        "username": current.user,
        "password": current.password,
        "priority": current.priority,
        "name": current.name,
        "v2_authority_pubkey": current.authority_pubkey,
        **data,
    }
    updated = _pool_from(merged, current.priority)
    pools = [updated if i == pool_id else p for i, p in enumerate(m.pools)]
    _check_priorities(pools)
    if updated.url == current.url and updated.user == current.user:
        updated.shares, updated.rejects = current.shares, current.rejects
    m.set_pools(pools, call.now)
    return message("Pool updated")


async def delete_pool(call: Call) -> web.Response:
    pool_id = _pool_id(call)
    m = call.miner
    m.set_pools([p for i, p in enumerate(m.pools) if i != pool_id], call.now)
    return message("Pool deleted")


async def test_connection(call: Call) -> web.Response:
    data = await call.body_object()
    url = _pool_url(data.get("url"))
    _authority_key(url, data)
    host = urlsplit(url).hostname or ""
    if (
        call.miner.has_fault("dead_pool")
        or "invalid" in host.split(".")[-1]
        or "unreachable" in host
    ):
        raise HttpError(503, "POOL_UNREACHABLE", f"Unable to connect to {url}")
    return message("Connection test passed")


# -- cooling, system ---------------------------------------------------------------------------


async def get_cooling(call: Call) -> web.Response:
    return json_response(payloads.cooling_status(call.miner, call.now))


async def put_cooling(call: Call) -> web.Response:
    data = await call.body_object()
    m = call.miner
    mode = _field(data, "mode", str, False) or m.fan_mode
    speed = _field(data, "speed_percentage", int, False)
    target = _field(data, "target_temperature_c", (int, float), False)
    if mode not in COOLING_MODES:
        raise HttpError(400, "INVALID_REQUEST", f"mode must be one of {', '.join(COOLING_MODES)}")
    if mode == "Off" and not m.model.immersion:
        raise HttpError(501, "NOT_IMPLEMENTED", "Cooling mode Off needs an immersion-cooled rig")
    if speed is not None and not 0 <= speed <= 100:
        raise HttpError(422, "OUT_OF_RANGE", "speed_percentage must be between 0 and 100")
    if target is not None and not 30 <= target <= 90:
        raise HttpError(422, "OUT_OF_RANGE", "target_temperature_c must be between 30 and 90")
    if mode == "Manual" and speed is None and m.fan_mode != "Manual":
        raise HttpError(400, "INVALID_REQUEST", "Manual mode needs speed_percentage")
    m.fan_mode = mode
    if speed is not None:
        m.fan_pct = speed
    if target is not None:
        m.target_temp_c = float(target)
    body: dict[str, Any] = {"mode": m.fan_mode, "speed_percentage": m.fan_percent(call.now)}
    if m.fan_mode == "Auto":
        body["target_temperature_c"] = m.target_temp_c
    return json_response(body)


async def reboot(call: Call) -> web.Response:
    call.hooks.reboot(call.miner)
    response = message("Reboot requested", 202)
    response.force_close()  # `Connection: close`: the rig goes down right after this reply
    return response


async def locate(call: Call) -> web.Response:
    seconds = _query_int(call, "led_on_time", 0)
    enable = _query_bool(call, "enable", True)
    call.miner.locate(enable, seconds, call.now)
    return message("Locate LED on" if enable else "Locate LED off", 202)


async def logs(call: Call) -> web.Response:
    lines = _query_int(call, "lines", 100)
    source = call.request.query.get("source") or "miner_sw"
    if source not in LOG_SOURCES:
        raise HttpError(422, "INVALID_REQUEST", f"source must be one of {', '.join(LOG_SOURCES)}")
    if not 1 <= lines <= MAX_LOG_LINES:
        raise HttpError(422, "OUT_OF_RANGE", f"lines must be between 1 and {MAX_LOG_LINES}")
    return json_response(payloads.logs(call.miner, source, lines, call.now))


async def errors(call: Call) -> web.Response:
    return json_response(payloads.errors(call.miner, call.now))


async def telemetry(call: Call) -> web.Response:
    raw = call.request.query.getall("level", [])
    levels = {part.strip() for item in raw for part in item.split(",") if part.strip()}
    unknown = levels - TELEMETRY_LEVELS
    if unknown:
        raise HttpError(400, "INVALID_REQUEST", f"unknown level {', '.join(sorted(unknown))}")
    return json_response(payloads.telemetry(call.miner, levels or {"miner"}, call.now))


def _board(call: Call) -> int:
    board = payloads.board_index(call.miner, call.params["hb_sn"])
    if board is None:
        raise HttpError(422, "INVALID_REQUEST", f"no hashboard {call.params['hb_sn']}")
    return board


async def hashboard(call: Call) -> web.Response:
    return json_response(payloads.hashboard_stats(call.miner, _board(call), call.now))


async def asic(call: Call) -> web.Response:
    board = _board(call)
    m = call.miner
    raw = call.params["asic_id"]
    try:
        index = int(raw)
    except ValueError:
        raise HttpError(400, "INVALID_REQUEST", "asic_id must be an integer") from None
    if not 0 <= index < m.model.asics_per_board:
        raise HttpError(422, "INVALID_REQUEST", f"no ASIC {index} on this hashboard")
    stats = payloads.hashboard_stats(m, board, call.now, asics=False)["hashboard-stats"]
    return json_response(
        {
            "asic-stats": payloads.asic_stats(
                m, board, index, stats["hashrate_ghs"] / 1000, stats["avg_asic_temp_c"]
            )
        }
    )


def _series(metric: str, per_board: bool) -> Handler:
    async def handler(call: Call) -> web.Response:
        duration = call.request.query.get("duration") or "1h"
        if duration not in payloads.DURATIONS:
            raise HttpError(
                400, "INVALID_REQUEST", f"duration must be one of {', '.join(payloads.DURATIONS)}"
            )
        board = _board(call) if per_board else None
        return json_response(payloads.series(call.miner, metric, duration, call.now, board))

    return handler


async def put_settings(call: Call) -> web.Response:
    """PUT /network, /system/ssh, /system/telemetry: stored and echoed, nothing else moves."""
    data = await call.body_object()
    m = call.miner
    path = call.request.path.rstrip("/")
    if path.endswith("/ssh"):
        enabled = _field(data.get("ssh-status") or {}, "enabled", bool, True)
        m.set_setting("ssh", enabled)
        return json_response({"ssh-status": {"enabled": enabled}})
    if path.endswith("/telemetry"):
        enabled = _field(data, "enabled", bool, True)
        m.set_setting("telemetry_service", enabled)
        state = "enabled" if enabled else "disabled"
        return json_response({"enabled": enabled, "message": f"Telemetry is {state}"})
    config = data.get("network-config", data)
    if not isinstance(config, dict):
        raise HttpError(400, "INVALID_REQUEST", "network-config must be an object")
    hostname = _field(config, "hostname", str, False)
    dhcp = _field(config, "dhcp", bool, False)
    if hostname is not None:
        m.set_setting("hostname", hostname[:63])
    if dhcp is not None:
        m.set_setting("dhcp", dhcp)
    return json_response(payloads.network_info(m))


async def put_tag(call: Call) -> web.Response:
    data = await call.body()
    created = call.miner.setting("tag", None) is None
    if len(json.dumps(data)) > MAX_TAG_BYTES:
        raise HttpError(413, "PAYLOAD_TOO_LARGE", "tag exceeds 10 KiB")
    call.miner.set_setting("tag", data)
    return message(
        "Tag created successfully" if created else "Tag updated successfully",
        201 if created else 200,
    )


async def delete_tag(call: Call) -> web.Response:
    call.miner.set_setting("tag", None)
    return web.Response(status=204)


def register(routes: Router) -> None:
    """Add the bearer routes; `gated` ones answer 403 while the factory password is active."""
    gated = {"gated": True}
    routes.add("GET", "/mining", mining)
    routes.add("GET", "/mining/target", get_target)
    routes.add("PUT", "/mining/target", put_target, **gated)
    routes.add("POST", "/mining/start", start, **gated)
    routes.add("POST", "/mining/stop", stop, **gated)
    routes.add("GET", "/pools", get_pools)
    routes.add("POST", "/pools", post_pools)
    routes.add("POST", "/pools/test-connection", test_connection)
    routes.add("GET", "/pools/{id}", get_pool)
    routes.add("PUT", "/pools/{id}", put_pool)
    routes.add("DELETE", "/pools/{id}", delete_pool)
    routes.add("GET", "/cooling", get_cooling)
    routes.add("PUT", "/cooling", put_cooling, **gated)
    routes.add("POST", "/system/reboot", reboot, **gated)
    routes.add("POST", "/system/locate", locate)
    routes.add("GET", "/system/logs", logs)
    routes.add("GET", "/errors", errors)
    routes.add("GET", "/telemetry", telemetry)
    routes.add("GET", "/hashboards/{hb_sn}", hashboard)
    routes.add("GET", "/hashboards/{hb_sn}/{asic_id}", asic)
    for metric in payloads.METRICS:
        routes.add("GET", f"/{metric}", _series(metric, per_board=False))
        routes.add("GET", f"/{metric}/{{hb_sn}}", _series(metric, per_board=True))
    for path in ("/network", "/system/ssh", "/system/telemetry"):
        routes.add("PUT", path, put_settings, **gated)
    routes.add("PUT", "/system/tag", put_tag, **gated)
    routes.add("DELETE", "/system/tag", delete_tag, **gated)
