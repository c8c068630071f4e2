"""CGMiner/BMMiner JSON RPC (TCP 4028): one request per connection, tolerant parsing.

The reply is read until the firmware's trailing NUL or EOF. Well-formed replies take the
fast path (one `json.loads`); only when that fails does `repair()` walk the text to fix the
quirks real firmware emits (`}{` between objects, `[,{`, `,}`, raw newlines, `inf`/`nan`,
replies cut off mid-buffer).
"""

from __future__ import annotations

import asyncio
import errno
import json
from typing import Any, cast

from miners.base import as_dict, as_list, gather_or_fail
from miners.errors import AuthFailed, BadResponse, MinerError, Rejected, Unreachable, Unsupported

RPC_PORT = 4028
MAX_REPLY = 4 * 1024 * 1024
_DECODER = json.JSONDecoder(strict=False, parse_constant=lambda _: None)
_NON_FINITE = {"inf", "+inf", "-inf", "nan", "-nan", "infinity", "+infinity", "-infinity"}
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")


def repair(text: str) -> str:
    """Rewrite almost-JSON into JSON: insert the comma missing in ``}{``, drop stray commas
    (``[,{``, ``,}``, ``,]``), turn bare inf/nan into null, and close a truncated reply at
    the last complete value. Strings are copied untouched (raw newlines included; the
    decoder runs with ``strict=False``)."""
    out: list[str] = []
    stack: list[str] = []
    in_str = escaped = False
    prev = ""  # last significant character written
    safe_len, safe_stack = 0, 0  # where a truncated reply can be cut, and its depth then
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_str:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
                prev = ch
            i += 1
            continue
        if ch == '"':
            if prev in ('"', "}", "]"):
                out.append(",")
            in_str = True
            out.append(ch)
        elif ch in "{[":
            if prev in ("}", "]", '"'):
                out.append(",")
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
            prev = ch
            safe_len, safe_stack = len(out), len(stack)
        elif ch in "}]":
            while out and out[-1] in ", \t\r\n":
                out.pop()
            if stack:
                stack.pop()
            out.append(ch)
            prev = ch
            safe_len, safe_stack = len(out), len(stack)
        elif ch == ",":
            if prev not in ("[", "{", ",", ""):
                safe_len, safe_stack = len(out), len(stack)
                out.append(ch)
                prev = ch
        elif ch.isalpha() or (ch in "+-" and i + 1 < n and text[i + 1].isalpha()):
            j = i + 1
            while j < n and text[j] in _WORD:
                j += 1
            word = text[i:j]
            out.append("null" if word.lower() in _NON_FINITE else word)
            prev = "a"
            i = j
            continue
        else:
            out.append(ch)
            if not ch.isspace():
                prev = ch
        i += 1
    if in_str or stack:
        del out[safe_len:]
        while out and out[-1] in ", \t\r\n":
            out.pop()
        out.extend(reversed(stack[:safe_stack]))
    return "".join(out)


def parse_reply(raw: bytes) -> dict[str, Any]:
    """The JSON object in an RPC reply. Several concatenated objects are merged (first one
    wins on clashing keys). Raises `BadResponse` when nothing usable is there."""
    text = raw.replace(b"\x00", b"").decode("utf-8", "replace").strip()
    if not text:
        raise BadResponse("empty RPC reply")
    try:
        value = _DECODER.decode(text)
    except ValueError:
        value = _decode_repaired(text)
    if not isinstance(value, dict):
        raise BadResponse(f"RPC reply is not a JSON object: {text[:80]!r}")
    return value


def _decode_repaired(text: str) -> Any:
    fixed = repair(text)
    try:
        value, end = _DECODER.raw_decode(fixed)
    except ValueError as exc:
        raise BadResponse(f"unparseable RPC reply: {text[:80]!r}") from exc
    while isinstance(value, dict):
        end = len(fixed) - len(fixed[end:].lstrip(", \t\r\n"))
        if end >= len(fixed):
            break
        try:
            more, end = _DECODER.raw_decode(fixed, end)
        except ValueError:
            break
        for key, item in as_dict(more).items():
            value.setdefault(key, item)
    return value


def status_error(reply: dict[str, Any], command: str) -> MinerError | None:
    """The typed error for an E/F STATUS envelope, or None for success."""
    status = reply.get("STATUS")
    first = reply if isinstance(status, str) else as_dict((as_list(status) or [{}])[0])
    if first.get("STATUS") not in ("E", "F"):
        return None
    msg = str(first.get("Msg") or first.get("Description") or "error")
    if msg.lower().startswith("no pools"):
        return None  # cgminer's way of listing zero pools (factory-fresh rigs), not a failure
    code = str(first.get("Code")) if first.get("Code") is not None else None
    text = f"RPC {command}: {msg}"
    lowered = msg.lower()
    if "invalid command" in lowered or "unknown command" in lowered:
        return Unsupported(text, code=code)
    if "denied" in lowered or "privilege" in lowered:
        return AuthFailed(text, code=code)
    return Rejected(text, code=code)


class _Collector(asyncio.Protocol):
    """Writes the request on connect, collects the reply until NUL or EOF. A bare Protocol
    instead of streams: this runs for every poll of every Antminer."""

    def __init__(self, payload: bytes, done: asyncio.Future[bytes]) -> None:
        self.payload = payload
        self.done = done
        self.chunks: list[bytes] = []
        self.size = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport API without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if data.endswith(b"\x00") or self.size > MAX_REPLY:
            self._finish()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.done.done() and not self.chunks:
            self.done.set_exception(Unreachable(f"RPC connection lost: {exc}"))
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(b"".join(self.chunks))
        if self.transport is not None:
            self.transport.close()


async def rpc(host: str, port: int, command: str, parameter: str | None = None) -> dict[str, Any]:
    """Send one command, return the parsed (not yet status-checked) reply."""
    request: dict[str, str] = {"command": command}
    if parameter is not None:
        request["parameter"] = parameter
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    try:
        transport, _ = await loop.create_connection(
            lambda: _Collector(json.dumps(request).encode(), done), host, port
        )
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "ECONNECT")
        raise Unreachable(f"{host}:{port} RPC: {exc.strerror or exc}", code=code) from exc
    try:
        raw = await done
    finally:
        transport.close()
    return parse_reply(raw)


class CgminerClient:
    """RPC to one miner. Remembers whether the firmware accepts ``a+b`` multi-commands, so a
    firmware that rejects them costs one failed attempt, not one per poll."""

    def __init__(self, host: str, port: int = RPC_PORT) -> None:
        self.host = host
        self.port = port
        self.multi: bool | None = None

    async def command(self, command: str, parameter: str | None = None) -> dict[str, Any]:
        reply = await rpc(self.host, self.port, command, parameter)
        error = status_error(reply, command)
        if error is not None:
            raise error
        return reply

    async def commands(self, *names: str) -> dict[str, dict[str, Any]]:
        """Several read commands, as ``{name: full reply}``: one connection when the firmware
        supports ``+``, else one per command."""
        if len(names) > 1 and self.multi is not False:
            reply = await rpc(self.host, self.port, "+".join(names))
            parts = {name: as_list(reply.get(name)) for name in names}
            if all(parts.values()):
                self.multi = True
                results = {name: as_dict(part[0]) for name, part in parts.items()}
                for name, result in results.items():
                    error = status_error(result, name)
                    if error is not None:
                        raise error
                return results
            self.multi = False
        replies = await gather_or_fail(*(self.command(name) for name in names))
        return dict(zip(names, replies, strict=True))
