"""CGMiner/BMMiner JSON RPC on port 4028, the way stock Antminers speak it.

One request per connection, no framing: the request is answered as soon as a complete JSON
object has arrived (or at EOF), with exactly one JSON object followed by a NUL byte, and then the
connection is closed. Real cgminer parses whatever its one read() brought; we wait a moment
longer for a request split over packets, then answer "Invalid JSON" like the firmware would.
Plain-text requests (`summary|param`) get the plain-text dialect.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable
from typing import Any, cast

from miners.sim import antminer_payloads as ap
from miners.sim.clock import Clock
from miners.sim.state import Miner

READ_TIMEOUT_S = 10.0
INCOMPLETE_WAIT_S = 0.5
"""How long an unparseable JSON request may wait for the rest of its bytes."""
MAX_REQUEST = 65536
READS = ("version", "summary", "pools", "devs", "stats", "devdetails", "config", "coin")
POOL_ACTIONS = {
    "switchpool": (27, "Switching to"),
    "enablepool": (47, "Enabling"),
    "disablepool": (48, "Disabling"),
}


def _status(kind: str, code: int, msg: str, now: float) -> dict[str, Any]:
    return {
        "STATUS": kind,
        "When": int(now),
        "Code": code,
        "Msg": msg,
        "Description": ap.DESCRIPTION,
    }


def _reply(
    kind: str,
    code: int,
    msg: str,
    now: float,
    section: str | None = None,
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"STATUS": [_status(kind, code, msg, now)]}
    if section is not None:
        body[section] = items
    body["id"] = 1
    return body


def _read(m: Miner, command: str, now: float) -> dict[str, Any]:
    if command == "version":
        return _reply("S", 22, "BMMiner versions", now, "VERSION", [ap.version(m)])
    if command == "pools":
        if not m.pools:
            return _reply("E", 8, "No pools", now)
        return _reply("S", 7, f"{len(m.pools)} Pool(s)", now, "POOLS", ap.pools(m, now))
    if command == "devdetails":
        return _reply("S", 69, "Device Details", now, "DEVDETAILS", ap.devdetails(m))
    if command == "config":
        return _reply("S", 33, "CGMiner config", now, "CONFIG", ap.config(m))
    if command == "coin":
        return _reply("S", 78, "CGMiner coin", now, "COIN", ap.coin(now))
    f = ap.Figures(m, now)
    if command == "summary":
        return _reply("S", 11, "Summary", now, "SUMMARY", [ap.summary(m, f, now)])
    if command == "devs":
        return _reply("S", 9, f"{m.model.boards} ASC(s)", now, "DEVS", ap.devs(m, f, now))
    return _reply("S", 70, "CGMiner stats", now, "STATS", ap.stats(m, f))


def _pool_action(m: Miner, command: str, parameter: Any, now: float) -> dict[str, Any]:
    code, verb = POOL_ACTIONS[command]
    if parameter is None or str(parameter).strip() == "":
        return _reply("E", 24, "Missing pool id parameter", now)
    try:
        index = int(str(parameter).split(",")[0])
    except ValueError:
        index = -1
    if not 0 <= index < len(m.pools):
        return _reply(
            "E", 25, f"Invalid pool id {parameter} - range is 0 - {len(m.pools) - 1}", now
        )
    m.settle(now)
    pool = m.pools[index]
    if command == "switchpool":
        m.pools.insert(0, m.pools.pop(index))
        for priority, p in enumerate(m.pools):
            p.priority = priority
        pool.enabled = True
    else:
        pool.enabled = command == "enablepool"
    return _reply("S", code, f"{verb} pool {index}:'{pool.url}'", now)


def respond(m: Miner, request: dict[str, Any], now: float, joins: bool = True) -> dict[str, Any]:
    """The reply object for a parsed request (single or, in JSON, `+`-joined commands)."""
    command = request.get("command")
    if not isinstance(command, str) or not command:
        return _reply("E", 23, "Missing JSON 'command'", now)
    parameter = request.get("parameter")
    names = [c.strip().lower() for c in command.split("+")]
    if len(names) > 1 and not joins:
        return _reply("E", 14, "Invalid command", now)  # cgminer joins JSON requests only
    if len(names) > 1:
        if any(n not in READS for n in names) or len(set(names)) != len(names):
            return _reply("E", 45, f"Invalid or duplicate command in join '{command}'", now)
        joined: dict[str, Any] = {n: [_read(m, n, now)] for n in names}
        joined["id"] = 1
        return joined
    name = names[0]
    if name in READS:
        return _read(m, name, now)
    if name in POOL_ACTIONS:
        return _pool_action(m, name, parameter, now)
    return _reply("E", 14, "Invalid command", now)


def encode(m: Miner, reply: dict[str, Any]) -> bytes:
    text = json.dumps(reply, separators=(",", ":"))
    if m.quirks and "STATS" in reply:
        # Real bmminer forgets the comma between the two objects of the STATS list.
        text = text.replace('},{"STATS":0', '}{"STATS":0', 1)
    return text.encode() + b"\x00"


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # cgminer's TRUESTR/FALSESTR
    return str(value)


def encode_text(reply: dict[str, Any]) -> bytes:
    """cgminer's plain-text dialect: `SECTION,key=value,...|` per object."""
    parts = []
    for section, items in reply.items():
        if not isinstance(items, list):
            continue
        for item in items:
            fields = ",".join(f"{k}={_text_value(v)}" for k, v in item.items())
            parts.append(fields if section == "STATUS" else f"{section},{fields}")
    return ("|".join(parts) + "|").encode() + b"\x00"


class RpcProtocol(asyncio.Protocol):
    """One short RPC connection; no task, one timer, freed on close."""

    def __init__(self, miner: Miner, active: set[RpcProtocol], clock: Clock) -> None:
        self.miner = miner
        self.active = active
        self.clock = clock
        self.buf = b""
        self.done = False
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.miner.is_down(self.clock.now()):
            self.abort()
            return
        self.active.add(self)
        self.timer = asyncio.get_running_loop().call_later(READ_TIMEOUT_S, self.abort)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buf += data
        if len(self.buf) > MAX_REQUEST:
            self._finish(_reply("E", 23, "Invalid JSON", self.clock.now()), text=False)
            return
        head = self.buf.lstrip()[:1]
        if head == b"{":
            try:
                request = json.loads(self.buf)
            except ValueError:
                # Probably incomplete: wait a moment for more bytes (or EOF), then give up.
                if self.idle is not None:
                    self.idle.cancel()
                self.idle = asyncio.get_running_loop().call_later(
                    INCOMPLETE_WAIT_S, self._invalid_json
                )
                return
            self._answer(request)
        elif head:
            self._answer_text()

    def eof_received(self) -> bool:
        if not self.done:
            if self.buf.lstrip()[:1] == b"{":
                try:
                    self._answer(json.loads(self.buf))
                except ValueError:
                    self._finish(_reply("E", 23, "Invalid JSON", self.clock.now()), text=False)
            elif self.buf.strip():
                self._answer_text()
            else:
                self.abort()
        return True  # keep the transport open for the reply; _send closes it

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        self.active.discard(self)
        for timer in (self.timer, self.idle):
            if timer is not None:
                timer.cancel()

    def _invalid_json(self) -> None:
        if not self.done:
            self._finish(_reply("E", 23, "Invalid JSON", self.clock.now()), text=False)

    def abort(self) -> None:
        self.done = True
        if self.transport is not None:
            self.transport.abort()

    def _answer(self, request: Any) -> None:
        now = self.clock.now()
        if not isinstance(request, dict):
            self._finish(_reply("E", 23, "Invalid JSON", now), text=False)
            return
        self._finish(respond(self.miner, request, now), text=False)

    def _answer_text(self) -> None:
        line = self.buf.decode("utf-8", "replace").strip().split("\n")[0]
        command, _, parameter = line.partition("|")
        self._finish(
            respond(
                self.miner,
                {"command": command, "parameter": parameter},
                self.clock.now(),
                joins=False,
            ),
            text=True,
        )

    def _finish(self, reply: dict[str, Any], text: bool) -> None:
        self.done = True
        for timer in (self.timer, self.idle):
            if timer is not None:
                timer.cancel()
        m = self.miner
        garbage = m.fault("garbage")
        if garbage is not None:
            payload = os.urandom(garbage["bytes"])
        else:
            payload = encode_text(reply) if text else encode(m, reply)
        slow = m.fault("slow")
        if slow is not None:
            asyncio.get_running_loop().call_later(slow["ms"] / 1000, self._send, payload)
        else:
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.miner.is_down(self.clock.now()):
            transport.abort()
            return
        transport.write(payload)
        transport.close()


class RpcServer:
    """Protocol factories per miner plus the set of open connections, for a clean stop."""

    def __init__(self, clock: Clock) -> None:
        self.active: set[RpcProtocol] = set()
        self.clock = clock

    def factory(self, miner: Miner) -> Callable[[], RpcProtocol]:
        return functools.partial(RpcProtocol, miner, self.active, self.clock)

    def close_all(self) -> None:
        for proto in list(self.active):
            proto.abort()
