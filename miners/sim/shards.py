"""Split a large fleet over several processes when one cannot hold enough sockets.

Every simulated miner owns two listening sockets, and its clients' connections cost more file
descriptors; with this machine's hard RLIMIT_NOFILE (20,000, not raisable without
CAP_SYS_RESOURCE) one process tops out near 6,000 miners. Larger fleets are forked into shards
of consecutive miners; the parent writes the merged inventory and, with `--control`, proxies the
control API to the shard that owns each address. It also spreads the load over both cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp
from aiohttp import web

from miners.sim.control import start_control
from miners.sim.fleet import SimFleet
from miners.sim.single import entry_id
from miners.sim.spec import FleetSpec

FDS_PER_MINER = 3  # two listeners plus, at worst, one client connection at a time
FD_RESERVE = 1024
READY_TIMEOUT_S = 120


def plan(total: int, fd_limit: int) -> list[range]:
    """Consecutive, near-equal slices small enough for `fd_limit` each."""
    per_process = max(1, (fd_limit - FD_RESERVE) // FDS_PER_MINER)
    count = max(1, math.ceil(total / per_process))
    size = math.ceil(total / count)
    return [range(i, min(total, i + size)) for i in range(0, total, size)]


def _child(spec: FleetSpec, only: range, conn: Connection) -> None:
    from miners.sim.cli import run_loop  # the child's own event loop; cli imports this module

    sys.exit(run_loop(_child_serve(spec, only, conn)))


async def _child_serve(spec: FleetSpec, only: range, conn: Connection) -> int:
    fleet = SimFleet(spec, only=only)
    try:
        await fleet.start()
    except OSError as exc:
        conn.send(("error", f"{exc.strerror or exc}"))
        return 1
    runner = await start_control(fleet, "127.0.0.1", 0)
    try:
        conn.send(("ready", runner.addresses[0][1], fleet.inventory))
        # Ctrl-C reaches the whole process group; only the parent reacts, then sends SIGTERM,
        # so a shard stopping first is never mistaken for a crash.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        await _until_signal((signal.SIGTERM,))
    finally:
        await runner.cleanup()
        await fleet.stop()
    return 0


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _until_signal(signals: tuple[int, ...], *extra: asyncio.Future[Any]) -> bool:
    """Wait for a signal (True) or for one of `extra` to finish first (False)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    for sig in signals:
        loop.add_signal_handler(sig, _settle, stop)
    await asyncio.wait([stop, *extra], return_when=asyncio.FIRST_COMPLETED)
    return stop.done()


class Shards:
    """The parent's view: child processes, their control ports and who owns which host."""

    def __init__(self, spec: FleetSpec, slices: list[range]) -> None:
        ctx = multiprocessing.get_context("fork")  # before any event loop exists in this process
        self.procs: list[BaseProcess] = []
        self.conns: list[Connection] = []
        for only in slices:
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(spec, only, child_end), daemon=True)
            proc.start()
            child_end.close()
            self.procs.append(proc)
            self.conns.append(parent_end)
        self.ports: list[int] = []
        self.owner: dict[str, int] = {}
        self.inventory: list[dict[str, Any]] = []

    async def wait_ready(self) -> str | None:
        """Collect every shard's inventory; an error message if one of them failed."""
        for index, conn in enumerate(self.conns):
            try:
                ready = await asyncio.to_thread(conn.poll, READY_TIMEOUT_S)
                message: tuple[Any, ...] = conn.recv() if ready else ("error", "start timed out")
            except EOFError:
                message = ("error", "a shard process exited during start")
            if message[0] != "ready":
                return str(message[1])
            _, port, inventory = message
            self.ports.append(port)
            for entry in inventory:
                self.owner[entry_id(entry)] = index
            self.inventory.extend(inventory)
        return None

    async def wait_for_exit(self) -> None:
        """Resolve when any child dies (the fleet is incomplete from then on)."""
        loop = asyncio.get_running_loop()
        died: asyncio.Future[None] = loop.create_future()
        for proc in self.procs:
            loop.add_reader(proc.sentinel, _settle, died)
        await died

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()


async def serve_sharded(
    shards: Shards,
    publish: Callable[[list[dict[str, Any]], str], None],
    control: tuple[str, int] | None,
) -> int:
    try:
        error = await shards.wait_ready()
        if error is not None:
            print(f"miners.sim: cannot listen: {error}", file=sys.stderr)
            return 1
        try:
            runner = await start_proxy(shards, *control) if control else None
        except OSError as exc:
            print(f"miners.sim: cannot listen on --control: {exc.strerror or exc}", file=sys.stderr)
            return 1
        try:
            publish(shards.inventory, f"{len(shards.procs)} processes")
        except OSError as exc:
            if runner is not None:
                await runner.cleanup()
            print(f"miners.sim: cannot write the inventory: {exc}", file=sys.stderr)
            return 1
        died = asyncio.ensure_future(shards.wait_for_exit())
        signalled = await _until_signal((signal.SIGTERM, signal.SIGINT), died)
        died.cancel()
        if runner is not None:
            await runner.cleanup()
        if not signalled:
            print("miners.sim: a shard process died; stopping", file=sys.stderr)
            return 1
        return 0
    finally:
        await shards.stop()


# -- control proxy ------------------------------------------------------------------------------

SHARDS_KEY: web.AppKey[Shards] = web.AppKey("shards", Shards)
SESSION_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


async def _forward(
    request: web.Request, shard: int, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    port = request.app[SHARDS_KEY].ports[shard]
    url = f"http://127.0.0.1:{port}{request.rel_url}"
    kwargs: dict[str, Any] = {"json": body} if body is not None else {"data": raw}
    async with request.app[SESSION_KEY].request(request.method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def _proxy(request: web.Request) -> web.Response:
    shards = request.app[SHARDS_KEY]
    parts = request.path.strip("/").split("/")
    raw = await request.read()
    if parts[0] == "miners" and len(parts) > 1:
        shard = shards.owner.get(parts[1])
        if shard is None:
            return web.json_response({"error": f"no simulated miner at {parts[1]}"}, status=404)
        status, data = await _forward(request, shard, raw=raw)
        return web.json_response(data, status=status)
    targets = range(len(shards.ports))
    body = None
    if request.path == "/faults" and request.method == "POST":
        with contextlib.suppress(ValueError):
            body = await request.json()
        if isinstance(body, dict) and isinstance(body.get("hosts"), list):
            by_shard: dict[int, list[str]] = {}
            for host in body["hosts"]:
                if str(host) not in shards.owner:
                    error = {"error": f"no simulated miner at {host}"}
                    return web.json_response(error, status=400)
                by_shard.setdefault(shards.owner[str(host)], []).append(str(host))
            replies = [
                await _forward(request, i, {**body, "hosts": h}) for i, h in by_shard.items()
            ]
            return _merge(replies)
    replies = [await _forward(request, i, raw=raw) for i in targets]
    return _merge(replies)


def _merge(replies: list[tuple[int, Any]]) -> web.Response:
    """Concatenate lists, sum counters; the first error wins."""
    for status, data in replies:
        if status >= 400:
            return web.json_response(data, status=status)
    datas = [d for _, d in replies]
    if all(isinstance(d, list) for d in datas):
        return web.json_response([item for d in datas for item in d], status=replies[0][0])
    merged = dict(datas[0]) if datas else {}
    for data in datas[1:]:
        for key, value in data.items():
            if isinstance(value, int) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
    return web.json_response(merged, status=replies[0][0] if replies else 200)


async def start_proxy(shards: Shards, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app[SHARDS_KEY] = shards
    app[SESSION_KEY] = aiohttp.ClientSession()
    app.on_cleanup.append(lambda a: a[SESSION_KEY].close())
    app.router.add_route("*", "/{tail:.*}", _proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
