"""The node fleet of bench.control_stream: N fleet nodes in one process (asyncio + uvloop,
aiohttp), each doing what the agent's control-stream loop does (fleetnode/client.py): connect
with its session token, ``hello``, wait for ``welcome`` (the agent's ``WELCOME_TIMEOUT_S``), a heartbeat right away and then
every ``heartbeat_interval_s``, every command's signature verified against the welcome's keys
and acked ``accepted`` then ``ok``, telemetry batches with up to 4 unacknowledged; after a close,
reconnect with the agent's backoff (`fleetnode.backoff.Backoff`, full jitter, 1 s base; a
refused connect waits at most `REFUSED_CAP_S`, as the agent does).

``--echo``: the same nodes against the reference echo server (``hello`` echoed = welcome).

Driven over stdin/stdout, one JSON object per line each way: ``{"op": ...}`` → one reply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench._django import ms, pct
from fleetnode import protocol
from fleetnode.backoff import Backoff, refused
from fleetnode.client import WELCOME_TIMEOUT_S  # the agent's own wait for welcome

ACK_WINDOW = 4
REFUSED = -1  # connect_once: the server refused the TCP connect (the agent retries sooner)
CLOSE_DROPPED = 4000  # our own close in the "drop" phase: a network blip, not a shutdown


class Fleet:
    def __init__(
        self, url: str, nodes: list[dict[str, Any]], statuses: dict[str, Any], echo: bool
    ) -> None:
        self.url, self.nodes, self.statuses, self.echo = url, nodes, statuses, echo
        self.by_id = {n["node_id"]: n for n in nodes}
        self.frames: Counter[str] = Counter()  # "in:<type>" / "out:<type>"
        self.closes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.sockets: dict[int, aiohttp.ClientWebSocketResponse] = {}
        self.welcomed_at: dict[int, float] = {}
        self.handshake: list[float] = []
        self.telemetry_seq: dict[int, int] = {}
        self.acks: dict[tuple[int, int], asyncio.Future[dict[str, Any]]] = {}
        self.pings: dict[str, asyncio.Future[float]] = {}
        self.found_acks: dict[tuple[int, str, int], asyncio.Future[dict[str, Any]]] = {}
        self.scans: list[asyncio.Task[None]] = []
        self.scan_stats: dict[str, Any] = {}
        self.scan_deadline = 0.0
        self.bad_signatures = 0
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None

    # --- one node --------------------------------------------------------------------------
    async def node_loop(self, node: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        backoff = Backoff(base=1.0, cap=60.0)
        while not self.stopping:
            code = await self.connect_once(node, backoff)
            if self.stopping or code == protocol.CLOSE_REVOKED:
                return
            await asyncio.sleep(backoff.next_refused() if code == REFUSED else backoff.next())

    async def connect_once(self, node: dict[str, Any], backoff: Backoff) -> int:
        assert self.http is not None
        node_id = node["node_id"]
        started = time.monotonic()
        headers = {} if self.echo else {"Authorization": f"Bearer {node['token']}"}
        try:
            ws = await self.http.ws_connect(
                self.url,
                headers=headers,
                max_msg_size=protocol.MAX_FRAME_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            self.failures[f"http_{exc.status}"] += 1
            return 0
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.failures[type(exc).__name__] += 1
            return REFUSED if refused(exc) else 0
        heartbeats: asyncio.Task[None] | None = None
        try:
            hello = {
                "type": "hello",
                "node_id": node_id,
                "agent_version": "1.0.0",
                "encryption_key": node["encryption_key"],
                "seq_hwm": {},
                "buffered": 0,
                # the agent names the set it polls (kept in its state): not re-sent if unchanged
                **({"assignment_version": v} if (v := node.get("assignment_version")) else {}),
            }
            await self.send(ws, hello)
            welcome = await self.welcome(ws)
            if welcome is None:
                self.failures["no_welcome"] += 1
                await ws.close()
                return ws.close_code or 1006
            backoff.reset()
            keys = {
                k["kid"]: protocol.b64decode(k["public_key"])
                for k in welcome.get("command_keys", [])
            }
            self.telemetry_seq[node_id] = int(welcome.get("telemetry_seq", 0))
            self.welcomed_at[node_id] = time.time()
            self.handshake.append(time.monotonic() - started)
            self.sockets[node_id] = ws
            interval = float(welcome.get("heartbeat_interval_s", protocol.HEARTBEAT_INTERVAL_S))
            heartbeats = asyncio.create_task(self.heartbeats(ws, interval))
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self.on_frame(ws, node_id, keys, json.loads(msg.data))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            self.failures[f"lost_{type(exc).__name__}"] += 1
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
            if self.sockets.get(node_id) is ws:
                del self.sockets[node_id]
        code = ws.close_code or 1006
        self.closes[str(code)] += 1
        return code

    async def welcome(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        try:
            msg = await ws.receive(timeout=WELCOME_TIMEOUT_S)
        except TimeoutError:
            return None
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        frame: dict[str, Any] = json.loads(msg.data)
        self.frames[f"in:{frame.get('type')}"] += 1
        wanted = "hello" if self.echo else "welcome"
        return frame if frame.get("type") == wanted else None

    async def send(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        await ws.send_str(protocol.dump_frame(frame))
        self.frames[f"out:{frame['type']}"] += 1

    async def heartbeats(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            while not ws.closed:
                health = {
                    "cpu_percent": round(random.uniform(3, 40), 1),
                    "memory_percent": 31.5,
                    "disk_percent": 12.0,
                    "load1": 0.4,
                    "uptime_s": 86400.0,
                }
                await self.send(
                    ws,
                    {
                        "type": "heartbeat",
                        "ts": time.time(),
                        "health": health,
                        "agent_version": "1.0.0",
                    },
                )
                await asyncio.sleep(interval)

    async def on_frame(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        node_id: int,
        keys: dict[str, bytes],
        frame: dict[str, Any],
    ) -> None:
        kind = str(frame.get("type"))
        self.frames[f"in:{kind}"] += 1
        if kind == "command":
            key = keys.get(str(frame.get("kid")))
            if key is None or not protocol.verify_command(key, frame):
                self.bad_signatures += 1
                await self.send(
                    ws,
                    {
                        "type": "ack",
                        "command_id": frame["command_id"],
                        "status": "rejected",
                        "error": "bad signature",
                    },
                )
                return
            if frame.get("kind") == "assign_miners":
                node = self.by_id[node_id]
                node["assignment_version"] = frame.get("payload", {}).get("version")
            if frame.get("kind") == "discover":
                await self.send(
                    ws, {"type": "ack", "command_id": frame["command_id"], "status": "accepted"}
                )
                self.scans.append(asyncio.create_task(self.discover(ws, node_id, frame)))
                return
            for status in ("accepted", "ok"):
                await self.send(
                    ws,
                    {
                        "type": "ack",
                        "command_id": frame["command_id"],
                        "status": status,
                        "result": {},
                    },
                )
        elif kind == "batch_ack" and "command_id" in frame:
            scan = (node_id, str(frame["command_id"]), int(frame.get("batch_seq", -1)))
            found = self.found_acks.pop(scan, None)
            if found is not None and not found.done():
                found.set_result(frame)
        elif kind == "batch_ack":
            future = self.acks.pop((node_id, int(frame.get("batch_seq", -1))), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "ping":  # the echo server's answer
            future_ping = self.pings.pop(str(frame.get("id")), None)
            if future_ping is not None and not future_ping.done():
                future_ping.set_result(time.perf_counter())

    # --- phases ------------------------------------------------------------------------------
    async def start(self, ramp_s: float, limit: float) -> dict[str, Any]:
        """Start every node, spread uniformly over `ramp_s`; wait until all are welcomed."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.http = aiohttp.ClientSession(connector=connector)
        t0 = time.time()
        self.tasks = [
            asyncio.create_task(self.node_loop(n, random.uniform(0, ramp_s))) for n in self.nodes
        ]
        return await self.wait_all(t0, limit + ramp_s)

    async def wait_all(self, since: float, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        want = {n["node_id"] for n in self.nodes}
        while time.monotonic() < deadline:
            fresh = {i for i, at in self.welcomed_at.items() if at >= since}
            if fresh >= want and len(self.sockets) >= len(want):
                break
            await asyncio.sleep(0.05)
        fresh_at = [at for at in self.welcomed_at.values() if at >= since]
        return {
            "connected": len(self.sockets),
            "of": len(want),
            "all_at": max(fresh_at) if len(fresh_at) >= len(want) else None,
            "since": since,
            "handshake_ms": {
                "p50": ms(pct(self.handshake, 0.5)),
                "p99": ms(pct(self.handshake, 0.99)),
            },
            "failures": dict(self.failures),
            "closes": dict(self.closes),
        }

    async def drop(self, limit: float) -> dict[str, Any]:
        """Every socket closed at once from the node side; the nodes come back on their own."""
        self.handshake.clear()
        self.failures.clear()
        self.closes.clear()
        since = time.time()
        await asyncio.gather(
            *(ws.close(code=CLOSE_DROPPED) for ws in list(self.sockets.values())),
            return_exceptions=True,
        )
        return await self.wait_all(since, limit)

    async def storm_wait(self, since: float, limit: float) -> dict[str, Any]:
        return await self.wait_all(since, limit + since - time.time())

    async def reset_counters(self) -> dict[str, Any]:
        self.handshake.clear()
        self.failures.clear()
        self.closes.clear()
        return {}

    async def telemetry(self, rounds: int, limit: float) -> dict[str, Any]:
        """Every node that owns miners sends `rounds` batches (FULL first, then SUMMARY), at most
        ACK_WINDOW unacknowledged, as the agent does; no new batch after `limit` s."""
        senders = [n for n in self.nodes if n["miners"] and n["node_id"] in self.sockets]
        lat: list[float] = []
        accepted = dropped = duplicate = 0

        async def one(node: dict[str, Any]) -> None:
            nonlocal accepted, dropped, duplicate
            node_id, window = node["node_id"], asyncio.Semaphore(ACK_WINDOW)
            waits = []
            for r in range(rounds):
                await window.acquire()
                if time.perf_counter() - started > limit:
                    window.release()
                    break
                ws = self.sockets.get(node_id)
                if ws is None:
                    window.release()
                    return
                seq = self.telemetry_seq[node_id] = self.telemetry_seq[node_id] + 1
                detail = "full" if r == 0 else "summary"
                now = time.time()
                outcomes = [
                    {
                        "miner_id": m,
                        "started": now - 0.5,
                        "seconds": 0.08,
                        "detail": detail,
                        "status": self.statuses[detail],
                        "error": None,
                    }
                    for m in node["miners"]
                ]
                future = asyncio.get_running_loop().create_future()
                self.acks[(node_id, seq)] = future
                sent = time.perf_counter()
                await self.send(
                    ws, {"type": "telemetry_batch", "batch_seq": seq, "outcomes": outcomes}
                )

                async def acked(f: asyncio.Future[dict[str, Any]], t: float) -> None:
                    nonlocal accepted, dropped, duplicate
                    try:
                        frame = await asyncio.wait_for(f, limit + 30)
                        lat.append(time.perf_counter() - t)
                        accepted += int(frame.get("accepted", 0))
                        dropped += int(frame.get("dropped", 0))
                        duplicate += bool(frame.get("duplicate"))
                    except TimeoutError:
                        pass
                    finally:
                        window.release()

                waits.append(asyncio.create_task(acked(future, sent)))
            await asyncio.gather(*waits)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in senders))
        wall = time.perf_counter() - started
        return {
            "nodes": len(senders),
            "batches": len(lat),
            "accepted": accepted,
            "dropped": dropped,
            "duplicates": duplicate,
            "wall_s": round(wall, 2),
            "devices_per_s": round(accepted / wall) if wall else None,
            "batch_ack_ms": {
                "p50": ms(pct(lat, 0.5)),
                "p99": ms(pct(lat, 0.99)),
                "max": ms(max(lat, default=None)),
            },
        }

    # --- discovery ---------------------------------------------------------------------------
    async def discover(
        self, ws: aiohttp.ClientWebSocketResponse, node_id: int, frame: dict[str, Any]
    ) -> None:
        """A `discover` as the agent answers it when every address in scope is a miner: found
        devices in batches of `batch_max` (200), one outstanding at a time (the next after the
        previous `batch_ack`), then the final ack. No new batch after the phase's deadline."""
        command_id, payload = str(frame["command_id"]), frame["payload"]
        addresses, port = list(payload["addresses"]), int(payload["ports"][0])
        size = min(200, int(payload.get("batch_max", 200)))
        stats = self.scan_stats
        sent = found = batches = 0
        for seq, at in enumerate(range(0, len(addresses), size), 1):
            if time.perf_counter() > self.scan_deadline or ws.closed:
                break
            devices = [
                {
                    "host": host,
                    "port": port,
                    "scheme": "http",
                    "driver": "protoos",
                    "make": "Proto",
                    "model": "Rig",
                    "firmware": "1.8.2",
                    "mac": "",
                    "serial": f"B{host}",
                }
                for host in addresses[at : at + size]
            ]
            future = asyncio.get_running_loop().create_future()
            self.found_acks[(node_id, command_id, seq)] = future
            started = time.perf_counter()
            stats.setdefault("first_sent", started)
            sent += len(devices)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self.send(
                    ws,
                    {
                        "type": "discovery_batch",
                        "command_id": command_id,
                        "batch_seq": seq,
                        "devices": devices,
                        "probed": sent,
                        "total": len(addresses),
                    },
                )
            try:
                ack = await asyncio.wait_for(future, 30)
            except TimeoutError:
                stats["unacked"] = stats.get("unacked", 0) + 1
                break
            stats["last_ack"] = time.perf_counter()
            stats.setdefault("lat", []).append(stats["last_ack"] - started)
            stats["accepted"] = stats.get("accepted", 0) + int(ack.get("accepted", 0))
            stats["dropped"] = stats.get("dropped", 0) + int(ack.get("dropped", 0))
            found += int(ack.get("accepted", 0))
            batches = seq
        status = "ok" if sent == len(addresses) else "partial"
        result = {"total": len(addresses), "probed": sent, "found": found, "batches": batches}
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await self.send(
                ws,
                {
                    "type": "ack",
                    "command_id": command_id,
                    "status": status,
                    "result": {**result, "unacked": 0, "skipped": 0},
                    **({"error": "the bench's time bound"} if status == "partial" else {}),
                },
            )

    async def discovery_arm(self, limit: float) -> dict[str, Any]:
        """Before the `discover` commands go out: a fresh tally, no batch after `limit` s."""
        self.scans, self.scan_stats = [], {}
        self.scan_deadline = time.perf_counter() + limit
        return {}

    async def discovery_wait(self, expect: int, limit: float) -> dict[str, Any]:
        """Until `expect` scans started and all ended (or `limit` s): devices/s from the acks."""
        deadline = time.monotonic() + limit
        while len(self.scans) < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.scans:
            await asyncio.wait(self.scans, timeout=max(0.0, deadline - time.monotonic()))
        stats, lat = self.scan_stats, self.scan_stats.get("lat", [])
        wall = stats.get("last_ack", 0.0) - stats.get("first_sent", 0.0)
        accepted = int(stats.get("accepted", 0))
        return {
            "nodes": len(self.scans),
            "batches": len(lat),
            "accepted": accepted,
            "dropped": int(stats.get("dropped", 0)),
            "unacked": int(stats.get("unacked", 0)),
            "wall_s": round(wall, 2),
            "devices_per_s": round(accepted / wall) if wall > 0 else None,
            "batch_ack_ms": {"p50": ms(pct(lat, 0.5)), "p99": ms(pct(lat, 0.99))},
        }

    async def echo_rtt(self, rate: float, seconds: float) -> dict[str, Any]:
        """Echo server only: a ping to a random node's socket at `rate`/s; its echo's RTT."""
        rtts: list[float] = []
        lost = 0

        async def one(i: int) -> None:
            nonlocal lost
            ws = random.choice(list(self.sockets.values()))
            future = asyncio.get_running_loop().create_future()
            self.pings[str(i)] = future
            sent = time.perf_counter()
            await self.send(ws, {"type": "ping", "id": str(i)})
            try:
                rtts.append(await asyncio.wait_for(future, 10) - sent)
            except TimeoutError:
                lost += 1

        tasks, start = [], time.monotonic()
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        await asyncio.gather(*tasks)
        return {
            "samples": len(rtts),
            "lost": lost,
            "rtt_ms": {"p50": ms(pct(rtts, 0.5)), "p99": ms(pct(rtts, 0.99))},
        }

    async def stop(self) -> dict[str, Any]:
        self.stopping = True
        await asyncio.gather(
            *(ws.close() for ws in list(self.sockets.values())), return_exceptions=True
        )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        return {}


async def serve(args: argparse.Namespace) -> None:
    spec = json.loads(Path(args.nodes).read_text())
    fleet = Fleet(args.url, spec["nodes"], spec["statuses"], args.echo)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        op = request.pop("op")
        if op == "stats":
            reply: dict[str, Any] = {
                "frames": dict(fleet.frames),
                "connected": len(fleet.sockets),
                "bad_signatures": fleet.bad_signatures,
            }
        else:
            reply = await getattr(fleet, op)(**request)
        print(json.dumps(reply), flush=True)
        if op == "stop":
            return


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._nodefleet")
    parser.add_argument("--url", required=True)
    parser.add_argument("--nodes", required=True, help="JSON file written by bench._nodes")
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
