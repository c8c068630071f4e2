"""`python -m bench.terminal [--quick]`: browser terminals end to end — WebSocket → daphne
(`config.asgi:application`, the real consumer and session manager) → asyncssh → a local
OpenSSH sshd on loopback (started here with its own keys and config).

Phases: keystroke echo (one key at a time, the time until the pty's echo comes back as an
output frame); `cat` of a large file (the client acks every frame, so flow control is on);
N sessions at once (attach all, then one echo round trip in every session). The daphne
process's CPU and peak RSS are reported with each phase.

The reference is ttyd (Debian package `ttyd`) on the same sshd when it is installed; when it
is not (this machine's Debian mirror has no candidate), the reference is a direct asyncssh
client on the same sshd — the floor our WebSocket/Django layer adds to — and the JSON says so.

Runs in a scratch PostgreSQL database (created and dropped, bench._django). Prints one JSON
object on its last line. Everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh

from bench._django import django_on_scratch_db, ms, pct, proc_cpu
from bench.control_stream import free_port, start_daphne, stop_popen, wait_ready

SSHD = "/usr/sbin/sshd"
TARGET = {"echo_p50_ms": 3.0, "cat_mb_per_s": 20.0, "sessions": 200}
FULL = {"keys": 300, "cat_mb": 50, "sessions": 200}
QUICK = {"keys": 100, "cat_mb": 10, "sessions": 50}
FRAME = struct.Struct(">Q")
MARK = b"END-OF-CAT"


def note(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} terminal: {message}", file=sys.stderr, flush=True)


def peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


# --- sshd -----------------------------------------------------------------------------------
def start_sshd(work: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    d = work / "sshd"
    d.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    os.chmod(work, 0o755)
    os.chmod(d, 0o755)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nMaxStartups 400:30:800\nPrintMotd no\nPrintLastLog no\n"
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port, (d / "client").read_text()
        time.sleep(0.05)
    raise RuntimeError("sshd did not start")


# --- our stack: a browser's side of /ws/terminals/{id}/ ---------------------------------------
class Viewer:
    """Like a browser: its socket is always read (so daphne's pings are answered at once);
    output is "rendered" — and acked — when the bench takes it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.tail = b""
        self.inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read_socket())

    async def _read_socket(self) -> None:
        while True:
            msg = await self.ws.receive()
            self.inbox.put_nowait(msg)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return

    async def attach(self) -> None:
        await self.ws.send_str(json.dumps({"type": "attach", "last_seq": 0}))
        msg = await asyncio.wait_for(self.inbox.get(), 60)
        if msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data)["type"] != "attached":
            raise RuntimeError(f"attach failed: {msg.type} {msg.data!r} {self.ws.close_code}")

    async def send(self, data: str) -> None:
        await self.ws.send_str(json.dumps({"type": "input", "data": data}))

    async def until(self, needle: bytes, timeout: float = 120) -> int:
        """Reads (acking every frame) until ``needle``; the bytes received."""
        return await _until(self, needle, timeout)

    async def read(self) -> bytes:
        msg = await self.inbox.get()
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await self.inbox.get()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"socket ended: {msg.type} {self.ws.close_code}")
        data: bytes = msg.data[FRAME.size :]
        self.seq = FRAME.unpack(msg.data[: FRAME.size])[0] + len(data)
        await self.ws.send_str(json.dumps({"type": "ack", "seq": self.seq}))
        return data

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def _until(term: Viewer | Direct, needle: bytes, timeout: float) -> int:
    """Bytes read until ``needle`` (counting what was already buffered); what follows the
    needle stays buffered for the next call."""
    got = 0
    window = term.tail
    async with asyncio.timeout(timeout):
        while True:
            at = window.find(needle)
            if at >= 0:
                term.tail = window[at + len(needle) :]
                return got
            window = window[-len(needle) :]
            data = await term.read()
            got += len(data)
            window += data


class Stack:
    def __init__(self, http: aiohttp.ClientSession, base: str, cookie: str, host: Any, user: Any):
        self.http, self.base, self.cookie, self.host, self.user = http, base, cookie, host, user

    async def open(self) -> Viewer:
        from asgiref.sync import sync_to_async

        from accounts.actor import Actor
        from terminals.services.sessions import session_open

        row = await sync_to_async(session_open)(actor=Actor.for_user(self.user), host=self.host)
        url = self.base.replace("http://", "ws://") + f"/ws/terminals/{row.pk}/"
        ws = await self.http.ws_connect(
            url, headers={"Origin": self.base, "Cookie": self.cookie}, max_msg_size=0
        )
        viewer = Viewer(ws)
        await viewer.attach()
        await ready(viewer)
        return viewer


# --- the direct reference: asyncssh straight to the same sshd ---------------------------------
class Direct:
    def __init__(self, conn: asyncssh.SSHClientConnection, process: Any) -> None:
        self.conn, self.process, self.tail = conn, process, b""

    @classmethod
    async def open(cls, port: int, key: str) -> Direct:
        conn = await asyncssh.connect(
            "127.0.0.1",
            port,
            username="root",
            client_keys=[asyncssh.import_private_key(key)],
            known_hosts=None,  # a throwaway sshd of this run
            agent_path=None,
            config=[],
        )
        process = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
        direct = cls(conn, process)
        await ready(direct)
        return direct

    async def send(self, data: str) -> None:
        self.process.stdin.write(data.encode())

    async def until(self, needle: bytes, timeout: float = 120) -> int:
        return await _until(self, needle, timeout)

    async def read(self) -> bytes:
        data: bytes = await self.process.stdout.read(65536)
        if not data:
            raise RuntimeError("the shell ended")
        return data

    def close(self) -> None:
        self.conn.close()


async def ready(term: Viewer | Direct) -> None:
    """A plain prompt, and everything before it read (the echoed command can't match)."""
    await term.send("PS1='$ '; stty -echoctl; echo READY''-1\n")
    await term.until(b"READY-1")
    await term.until(b"$ ")


# --- phases -----------------------------------------------------------------------------------
async def echo(term: Viewer | Direct, keys: int) -> dict[str, Any]:
    times = []
    for i in range(keys):
        key = "abcdefghijklmnopqrstuvwxyz"[i % 26]
        started = time.perf_counter()
        await term.send(key)
        await term.until(key.encode())
        times.append(time.perf_counter() - started)
    await term.send("\x15")  # ^U: the typed line is dropped
    return {"keys": keys, "p50_ms": ms(pct(times, 0.5)), "p99_ms": ms(pct(times, 0.99))}


async def cat(term: Viewer | Direct, path: Path, size: int) -> dict[str, Any]:
    await term.send("stty -echo\n")
    await term.until(b"$ ")
    started = time.perf_counter()
    await term.send(f"cat {path}; echo {MARK.decode()[:3]}''{MARK.decode()[3:]}\n")
    got = await term.until(MARK, timeout=600)
    took = time.perf_counter() - started
    await term.until(b"$ ")
    await term.send("stty echo\n")
    await term.until(b"$ ")
    return {
        "file_mb": round(size / 1e6, 1),
        "received_mb": round(got / 1e6, 1),  # the pty turns \n into \r\n
        "seconds": round(took, 2),
        "mb_per_s": round(size / 1e6 / took, 1),
    }


async def many(open_one: Any, count: int, close: Any) -> dict[str, Any]:
    gate = asyncio.Semaphore(20)  # sshd's MaxStartups and a fair ramp

    async def one() -> Any:
        async with gate:
            return await open_one()

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    opened = time.perf_counter() - started
    terms = [t for t in results if not isinstance(t, BaseException)]
    errors = [repr(e)[:200] for e in results if isinstance(e, BaseException)]
    if errors:
        note(f"{len(errors)} of {count} sessions failed to open; first: {errors[0]}")

    async def round_trip(term: Any, n: int) -> float:
        t0 = time.perf_counter()
        await term.send(f"echo ok-$(({n}+1000))\n")
        await term.until(f"ok-{n + 1000}".encode())
        return time.perf_counter() - t0

    answers = await asyncio.gather(
        *(round_trip(t, n) for n, t in enumerate(terms)), return_exceptions=True
    )
    rtts = [a for a in answers if isinstance(a, float)]
    lost = [
        f"{type(a).__name__} close={getattr(getattr(t, 'ws', None), 'close_code', None)}"
        for a, t in zip(answers, terms, strict=True)
        if not isinstance(a, float)
    ]
    if lost:
        note(f"{len(lost)} sessions failed their round trip; first: {lost[0]}")
    for term in terms:
        with contextlib.suppress(Exception):
            await close(term)
    return {
        "sessions": len(terms),
        "asked": count,
        "open_errors": sorted(set(errors))[:3],
        "round_trip_failed": len(lost),
        "round_trip_errors": sorted(set(lost))[:3],
        "open_all_s": round(opened, 2),
        "echo_all_at_once_p50_ms": ms(pct(rtts, 0.5)),
        "echo_all_at_once_p99_ms": ms(pct(rtts, 0.99)),
    }


def cpu_block(pid: int, before: float, wall: float) -> dict[str, Any]:
    used = proc_cpu(pid) - before
    return {"server_cpu_s": round(used, 2), "server_cpu_pct": round(100 * used / wall, 1)}


async def ours(cfg: dict[str, Any], work: Path, port: int, key: str, blob: Path) -> dict[str, Any]:
    from asgiref.sync import sync_to_async
    from django.test import Client

    from accounts.actor import Actor
    from accounts.models import Membership, Organization, Role, Site, User
    from terminals.services.hosts import host_add

    def world() -> tuple[Any, Any, str]:
        org = Organization.unscoped.create(name="Bench", slug="bench")
        site = Site.unscoped.create(org=org, name="bench site", slug="bench-site")
        user = User.objects.create_user(email="operator@bench.example", password=None)
        role = Role.unscoped.get(slug="admin", org__isnull=True)
        Membership.unscoped.create(user=user, org=org, role=role)
        host = host_add(
            actor=Actor.for_user(user),
            site=site,
            name="bench sshd",
            address="127.0.0.1",
            port=port,
            username="root",
            auth_method="key",
            secret=key,
        )
        client = Client()
        client.force_login(user)
        return host, user, f"sessionid={client.cookies['sessionid'].value}"

    host, user, cookie = await sync_to_async(world)()
    web_port = free_port()
    log = work / "daphne.log"
    daphne = start_daphne(web_port, log)
    try:
        await wait_ready(daphne, web_port, log)
        base = f"http://127.0.0.1:{web_port}"
        out: dict[str, Any] = {}
        # no connector limit: aiohttp's default (100) would cap the sessions at 100
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            stack = Stack(http, base, cookie, host, user)
            term = await stack.open()
            t0, c0 = time.perf_counter(), proc_cpu(daphne.pid)
            out["echo"] = await echo(term, cfg["keys"])
            out["echo"] |= cpu_block(daphne.pid, c0, time.perf_counter() - t0)
            note(f"ours echo: {out['echo']}")
            t0, c0 = time.perf_counter(), proc_cpu(daphne.pid)
            out["cat"] = await cat(term, blob, blob.stat().st_size)
            out["cat"] |= cpu_block(daphne.pid, c0, time.perf_counter() - t0)
            out["cat"]["server_peak_rss_mb"] = peak_rss_mb(daphne.pid)
            note(f"ours cat: {out['cat']}")
            await term.close()

            async def close(viewer: Viewer) -> None:
                await viewer.close()

            t0, c0 = time.perf_counter(), proc_cpu(daphne.pid)
            out["many"] = await many(stack.open, cfg["sessions"], close)
            out["many"] |= cpu_block(daphne.pid, c0, time.perf_counter() - t0)
            out["many"]["server_peak_rss_mb"] = peak_rss_mb(daphne.pid)
            note(f"ours sessions: {out['many']}")
        return out
    finally:
        stop_popen(daphne)


async def direct(cfg: dict[str, Any], port: int, key: str, blob: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    term = await Direct.open(port, key)
    out["echo"] = await echo(term, cfg["keys"])
    out["cat"] = await cat(term, blob, blob.stat().st_size)
    term.close()

    async def open_one() -> Direct:
        return await Direct.open(port, key)

    async def close(term: Direct) -> None:
        term.close()

    out["many"] = await many(open_one, cfg["sessions"], close)
    note(f"direct asyncssh: {out}")
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = dict(QUICK if args.quick else FULL)
    if args.sessions:
        cfg["sessions"] = args.sessions
    if not os.path.exists(SSHD):
        raise SystemExit("needs openssh-server (/usr/sbin/sshd)")
    with (
        tempfile.TemporaryDirectory(prefix="rw-bench-terminal-") as tmp,
        django_on_scratch_db(
            "terminal",
            extra_env={
                "TERMINAL_PER_HOST": str(cfg["sessions"] + 10),
                "TERMINAL_PER_USER": str(cfg["sessions"] + 10),
            },
        ),
    ):
        work = Path(tmp)
        blob = work / "blob.txt"
        line = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 3)[:99] + b"\n"  # 100-byte lines
        with blob.open("wb") as f:
            for _ in range(cfg["cat_mb"] * 10_000):
                f.write(line)
        os.chmod(work, 0o755)
        os.chmod(blob, 0o644)
        sshd, port, key = start_sshd(work)
        try:
            mine = asyncio.run(ours(cfg, work, port, key, blob))
            reference = asyncio.run(direct(cfg, port, key, blob))
        finally:
            stop_popen(sshd)
    ttyd = shutil.which("ttyd")
    return {
        "bench": "terminal",
        "quick": bool(args.quick),
        "target": TARGET,
        "ours": mine,
        "reference": {
            "kind": "direct asyncssh client on the same sshd (no WebSocket, no Django)",
            "ttyd": "installed but not driven yet" if ttyd else "not installable here",
            **reference,
        },
        "ratio": {
            "echo_p50": ratio(mine["echo"]["p50_ms"], reference["echo"]["p50_ms"]),
            "cat_throughput": ratio(mine["cat"]["mb_per_s"], reference["cat"]["mb_per_s"]),
            "sessions_echo_p50": ratio(
                mine["many"]["echo_all_at_once_p50_ms"],
                reference["many"]["echo_all_at_once_p50_ms"],
            ),
        },
        "meets": {
            "echo_p50": (mine["echo"]["p50_ms"] or 1e9) <= TARGET["echo_p50_ms"],
            "cat": mine["cat"]["mb_per_s"] >= TARGET["cat_mb_per_s"],
            "sessions": mine["many"]["sessions"] >= TARGET["sessions"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.terminal", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer keys, 10 MB, 50 sessions")
    parser.add_argument("--sessions", type=int, default=None, help="concurrent sessions")
    result = run(parser.parse_args())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
