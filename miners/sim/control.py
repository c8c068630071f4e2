"""`--control HOST:PORT`: a small local JSON API to inspect miners and inject faults at run time.

It exists for benchmarks and manual testing driven from another process; it binds loopback
only because anyone who can reach it can take the whole simulated fleet down.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from aiohttp import web

from miners.sim.faults import FaultError
from miners.sim.fleet import SimFleet
from miners.sim.single import entry_id

FLEET_KEY: web.AppKey[SimFleet] = web.AppKey("fleet", SimFleet)
routes = web.RouteTableDef()


def parse_address(text: str) -> tuple[str, int]:
    """`127.0.0.1:9999` -> ("127.0.0.1", 9999); anything off loopback is refused."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--control wants HOST:PORT, got {text!r}")
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError("--control must bind a loopback address (e.g. 127.0.0.1:PORT)")
    return host.strip("[]"), int(port)


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
        ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    return data


def _fleet(request: web.Request) -> SimFleet:
    return request.app[FLEET_KEY]


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "miners": len(_fleet(request).inventory)})


@routes.get("/miners")
async def list_miners(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    now = fleet.clock.now()
    return web.json_response(
        [
            {**entry, "down": m.is_down(now), "faults": dict(m.faults or {})}
            for entry, m in ((e, fleet.miner(entry_id(e))) for e in fleet.inventory)
        ]
    )


@routes.get("/miners/{host}")
async def get_miner(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    try:
        miner = fleet.miner(request.match_info["host"])
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    return web.json_response(miner.snapshot(fleet.clock.now()))


@routes.post("/miners/{host}/faults")
async def set_fault(request: web.Request) -> web.Response:
    data = await _body(request)
    host = request.match_info["host"]
    kind = data.pop("kind", None)
    if not isinstance(kind, str):
        return _error(400, "kind is required")
    faults = _fleet(request).faults
    try:
        faults.set(host, kind, **data)
    except FaultError as exc:
        return _error(404 if "no simulated miner" in str(exc) else 400, str(exc))
    return web.json_response({"host": host, "faults": faults.get(host)})


@routes.delete("/miners/{host}/faults")
@routes.delete("/miners/{host}/faults/{kind}")
async def clear_fault(request: web.Request) -> web.Response:
    host = request.match_info["host"]
    faults = _fleet(request).faults
    try:
        faults.clear(host, request.match_info.get("kind"))
    except FaultError as exc:
        return _error(404 if "no simulated miner" in str(exc) else 400, str(exc))
    return web.json_response({"host": host, "faults": faults.get(host)})


@routes.post("/miners/{host}/reboot")
async def reboot(request: web.Request) -> web.Response:
    data = await _body(request)
    downtime = data.get("downtime")
    if downtime is not None and (
        isinstance(downtime, bool) or not isinstance(downtime, int | float) or downtime < 0
    ):
        return _error(400, "downtime must be a non-negative number of seconds")
    fleet = _fleet(request)
    try:
        miner = fleet.miner(request.match_info["host"])
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    fleet.reboot(miner, downtime)
    return web.json_response({"host": miner.host, "rebooting": True}, status=202)


@routes.post("/faults")
async def bulk_set(request: web.Request) -> web.Response:
    """Same fault on many miners: {"kind", "hosts": [...] (default: all), ...params}."""
    data = await _body(request)
    fleet = _fleet(request)
    kind = data.pop("kind", None)
    hosts = data.pop("hosts", None) or [entry_id(e) for e in fleet.inventory]
    if not isinstance(kind, str) or not isinstance(hosts, list):
        return _error(400, "kind (string) is required; hosts must be a list")
    try:
        for host in hosts:
            fleet.faults.set(str(host), kind, **data)
    except FaultError as exc:
        return _error(400, str(exc))
    return web.json_response({"kind": kind, "count": len(hosts)})


@routes.delete("/faults")
async def bulk_clear(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    for entry in fleet.inventory:
        fleet.faults.clear(entry_id(entry))
    return web.json_response({"cleared": len(fleet.inventory)})


async def start_control(fleet: SimFleet, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app[FLEET_KEY] = fleet
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
