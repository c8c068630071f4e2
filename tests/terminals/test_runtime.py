"""Runtime limits of terminal sessions against a real sshd: password logins, idle timeout,
maximum length, caps, detach grace, login expiry (4401, park, reattach), flow control and
the connect/login timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from accounts.actor import Actor
from accounts.errors import ApplicationError
from config.asgi import application
from terminals import consumer, manager
from terminals.models import SessionState, SshHost, TerminalSession
from terminals.services.hosts import host_add
from terminals.services.sessions import session_close_request, session_open
from tests.conftest import OrgWorld
from tests.fleet.test_live import session_headers
from tests.terminals.conftest import SSHD, Sshd, _free_port, _keygen
from tests.terminals.test_sessions import add_host, attach, open_socket, read_until, type_

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "correct horse 42"


@pytest.fixture(autouse=True)
def loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def fast_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "TICK", 0.1)


@pytest.fixture
def password_sshd(tmp_path: Path) -> Iterator[int]:
    """A real sshd that takes passwords: root's password comes from a private copy of
    /etc/shadow bind-mounted in sshd's own mount namespace (the host's file is untouched)."""
    if not os.path.exists(SSHD) or shutil.which("unshare") is None:
        pytest.skip("needs openssh-server and util-linux unshare")
    d = tmp_path / "pwsshd"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    _keygen(d / "host_ed25519")
    digest = subprocess.run(
        ["openssl", "passwd", "-6", PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    lines = Path("/etc/shadow").read_text().splitlines()
    shadow = [f"root:{digest}:20000:0:99999:7:::" if ln.startswith("root:") else ln for ln in lines]
    (d / "shadow").write_text("\n".join(shadow) + "\n")
    os.chmod(d / "shadow", 0o640)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n"
        f"PidFile {d}/sshd.pid\nPermitRootLogin yes\nPasswordAuthentication yes\n"
        "PubkeyAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    script = f"mount --bind {d}/shadow /etc/shadow && exec {SSHD} -D -e -f {d}/sshd_config"
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.skip("no mount namespace here: can't give sshd a private shadow file")
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


def password_host(world: OrgWorld, port: int, password: str = PASSWORD) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.users["admin"]),
        site=world.sites[0],
        name=f"pw {port} {password[:5]}",
        address="127.0.0.1",
        port=port,
        username="root",
        auth_method="password",
        secret=password,
    )


async def close_code(socket: WebsocketCommunicator, timeout: float = 15) -> int:
    """Reads (and acks) until the server closes; the close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        frame = await socket.receive_output(timeout=deadline - loop.time())
        if frame["type"] == "websocket.close":
            return int(frame["code"])
        if frame.get("bytes"):
            start = struct.unpack(">Q", frame["bytes"][:8])[0]
            end = start + len(frame["bytes"]) - 8
            await socket.send_to(text_data=json.dumps({"type": "ack", "seq": end}))
    raise AssertionError("the socket stayed open")


async def row_of(pk: int) -> TerminalSession:
    return await sync_to_async(TerminalSession.unscoped.get)(pk=pk)


async def wait_closed(pk: int, timeout: float = 15) -> TerminalSession:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        row = await row_of(pk)
        if row.state == SessionState.CLOSED:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError("the session is still open")


def cookie_key(headers: list[tuple[bytes, bytes]]) -> str:
    cookie = dict(headers)[b"cookie"].decode()
    return cookie.split("sessionid=", 1)[1].split(";", 1)[0]


async def test_password_login_and_a_wrong_password(org_a: OrgWorld, password_sshd: int) -> None:
    user = org_a.users["operator"]
    host = await sync_to_async(password_host)(org_a, password_sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await type_(socket, "echo pw-$((20+22)); whoami\n")
    seen = bytearray()
    await read_until(socket, b"pw-42", seen)
    await read_until(socket, b"root", seen)
    await type_(socket, "exit\n")
    assert await close_code(socket) == 1000

    wrong = await sync_to_async(password_host)(org_a, password_sshd, "not the password")
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=wrong)
    socket = await open_socket(user, row.pk)
    await socket.send_to(text_data=json.dumps({"type": "attach", "last_seq": 0}))
    error = json.loads((await socket.receive_output(timeout=30))["text"])
    assert error["type"] == "error" and "refused the login" in error["message"], error
    assert await close_code(socket) == 4502
    ended = await wait_closed(row.pk)
    assert "refused the login" in ended.end_reason


async def test_idle_timeout_ends_the_session(
    org_a: OrgWorld, sshd: Sshd, settings: Any, fast_ticks: None
) -> None:
    settings.TERMINAL_IDLE_SECONDS = 1
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    started = asyncio.get_running_loop().time()
    assert await close_code(socket) == 4410
    assert asyncio.get_running_loop().time() - started >= 0.9
    ended = await wait_closed(row.pk)
    assert ended.end_reason == "idle timeout"
    assert manager.get(row.pk) is None


async def test_maximum_length_ends_a_busy_session(
    org_a: OrgWorld, sshd: Sshd, settings: Any, fast_ticks: None
) -> None:
    settings.TERMINAL_MAX_SECONDS = 2
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await type_(socket, "while :; do echo tick; sleep 0.2; done\n")  # never idle
    assert await close_code(socket) == 4410
    ended = await wait_closed(row.pk)
    assert ended.end_reason == "maximum length"
    assert ended.bytes_out > 0 and ended.bytes_in > 0


async def test_detach_grace_expiry_closes_and_refuses_reattach(
    org_a: OrgWorld, sshd: Sshd, settings: Any, fast_ticks: None
) -> None:
    settings.TERMINAL_GRACE_SECONDS = 1
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await socket.disconnect()
    ended = await wait_closed(row.pk)
    assert ended.end_reason == "detached too long"
    again = await open_socket(user, row.pk)
    assert (await again.receive_output(timeout=5))["code"] == 4410


async def test_per_user_cap_and_per_host_cap_across_users(
    org_a: OrgWorld, sshd: Sshd, settings: Any
) -> None:
    settings.TERMINAL_PER_USER = 1
    host = await sync_to_async(add_host)(org_a, sshd)
    operator = Actor.for_user(org_a.users["operator"])
    first = await sync_to_async(session_open)(actor=operator, host=host)
    with pytest.raises(ApplicationError) as refused:
        await sync_to_async(session_open)(actor=operator, host=host)
    assert "You already have 1" in refused.value.errors["host"][0]
    await sync_to_async(session_close_request)(actor=operator, session=first)
    await sync_to_async(session_open)(actor=operator, host=host)  # the slot is free again
    # the host cap (default 2) counts everyone's sessions
    await sync_to_async(session_open)(actor=Actor.for_user(org_a.users["admin"]), host=host)
    with pytest.raises(ApplicationError) as full:
        await sync_to_async(session_open)(actor=Actor.for_user(org_a.users["owner"]), host=host)
    assert "already has 2 open sessions" in str(full.value)


async def test_login_expiry_closes_4401_parks_and_reattaches(
    org_a: OrgWorld, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "RECHECK_SECONDS", 0.2)
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    headers = await sync_to_async(session_headers)(user)
    socket = WebsocketCommunicator(application, f"/ws/terminals/{row.pk}/", headers=headers)
    assert (await socket.connect(timeout=5))[0]
    await attach(socket)
    seen = bytearray()
    await type_(socket, "echo before-$((1+1)); sleep 1; echo parked-$((3+3))\n")
    seq = await read_until(socket, b"before-2", seen)
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    await sync_to_async(store(session_key=cookie_key(headers)).delete)()  # the login ends
    assert await close_code(socket) == 4401
    parked = manager.get(row.pk)
    assert parked is not None and not parked.closed
    assert (await row_of(row.pk)).state == SessionState.DETACHED
    # the old cookie can't reattach; a fresh login of the same user can, with nothing lost
    stale = WebsocketCommunicator(application, f"/ws/terminals/{row.pk}/", headers=headers)
    await stale.connect(timeout=5)
    assert (await stale.receive_output(timeout=5))["code"] == 4401
    again = await open_socket(user, row.pk)
    event = await attach(again, last_seq=seq)
    assert event["missed"] == 0
    rest = bytearray()
    await read_until(again, b"parked-6", rest)
    await type_(again, "exit\n")
    assert await close_code(again) == 1000


async def test_flow_control_resumes_on_ack_and_loses_nothing(org_a: OrgWorld, sshd: Sshd) -> None:
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await type_(socket, "stty -echo; yes rw | head -c 3000000; echo; echo done-$((5*5))\n")
    for _ in range(100):  # unacked: the session pauses the channel
        live = manager.get(row.pk)
        if live is not None and live.paused:
            break
        await asyncio.sleep(0.05)
    assert live is not None and live.paused
    seen = bytearray()
    await read_until(socket, b"done-25", seen)  # asserts every frame starts where the last ended
    assert seen.count(b"rw\r\n") == 1_000_000  # the pty turns \n into \r\n
    assert live.ring.end - live.floor < manager.HIGH_WATER + 256 * 1024
    await type_(socket, "exit\n")
    assert await close_code(socket) == 1000


async def test_a_bad_resize_is_4400(org_a: OrgWorld, sshd: Sshd) -> None:
    user = org_a.users["operator"]
    host = await sync_to_async(add_host)(org_a, sshd)
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    await socket.send_to(text_data=json.dumps({"type": "resize", "cols": 0, "rows": 10**9}))
    assert await close_code(socket) == 4400
    await socket.disconnect()
    for _ in range(50):
        if (await row_of(row.pk)).state == SessionState.DETACHED:
            break
        await asyncio.sleep(0.05)
    assert (await row_of(row.pk)).state == SessionState.DETACHED  # parked, not killed
    live = manager.get(row.pk)
    assert live is not None
    await live.close("test over", 4410)


class _StallingServer(asyncssh.SSHServer):
    """Completes the SSH handshake, then never answers the password."""

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        await asyncio.Event().wait()
        return False


@pytest.fixture
async def silent_ports(tmp_path: Path) -> AsyncIterator[tuple[int, int, int]]:
    """(a port whose accept queue is full: SYNs go unanswered; a port that accepts and never
    says a word; an SSH server that never finishes the login)."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    filler = socket.socket()
    filler.connect(full.getsockname())  # takes the only slot of the queue

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    stalling = await asyncssh.create_server(
        _StallingServer,
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
    )
    yield (
        full.getsockname()[1],
        server.sockets[0].getsockname()[1],
        stalling.sockets[0].getsockname()[1],
    )
    stalling.close()
    server.close()
    filler.close()
    full.close()


async def test_connect_and_login_timeouts_against_silent_ports(
    org_a: OrgWorld, silent_ports: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TCP connect is bounded by CONNECT_TIMEOUT, the SSH handshake and login by
    LOGIN_TIMEOUT (10 s and 20 s; shortened here)."""
    assert (manager.CONNECT_TIMEOUT, manager.LOGIN_TIMEOUT) == (10.0, 20.0)
    monkeypatch.setattr(manager, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(manager, "LOGIN_TIMEOUT", 1.5)
    user = org_a.users["operator"]
    loop = asyncio.get_running_loop()
    for port, limit, message in (
        (silent_ports[0], 0.5, "Can't reach 127.0.0.1"),
        (silent_ports[1], 1.5, "SSH to "),
        (silent_ports[2], 1.5, "SSH to "),
    ):
        host = await sync_to_async(password_host)(org_a, port)
        row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host)
        socket = await open_socket(user, row.pk)
        started = loop.time()
        await socket.send_to(text_data=json.dumps({"type": "attach", "last_seq": 0}))
        error = json.loads((await socket.receive_output(timeout=10))["text"])
        took = loop.time() - started
        assert error["type"] == "error" and error["message"].startswith(message), error
        assert limit * 0.9 <= took < limit + 6, (port, took)  # + the DB writes, loaded box
        assert await close_code(socket) == 4502
        assert (await wait_closed(row.pk)).end_reason
