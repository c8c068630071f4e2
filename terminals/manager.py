"""Live terminal sessions of this process.

A ``Session`` owns the asyncssh connection and its pty channel, a replay ring of the output
(1 MiB, byte sequence numbers) and the viewers attached to it. Sessions are pinned to the
replica that started them (``TerminalSession.replica``); a reattach that reaches another
replica is refused with 4409 so the load balancer can route by session.

Flow control: each viewer acknowledges the bytes it rendered. A viewer is sent at most
``HIGH_WATER`` bytes beyond its ack, and the channel stops being read while the slowest
viewer (or, detached, the last ack) is ``HIGH_WATER`` behind: the remote blocks on its SSH
window, memory stays bounded, and nothing between the last ack and now is ever dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncssh
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.errors import ApplicationError
from fleet import crypto, dial
from fleet.models import Miner
from fleet.netguard import AddressRefused
from fleet.nodes import tunnel as node_tunnel
from terminals.close_codes import (
    CLOSE_HOST_KEY_CHANGED,
    CLOSE_NORMAL,
    CLOSE_SESSION_GONE,
    CLOSE_SSH_FAILED,
)
from terminals.models import AuthMethod, SessionState, SshHost, TerminalSession
from terminals.recorder import Recorder
from terminals.ring import Ring
from terminals.services import hosts as host_services
from terminals.services import recordings as recording_services
from terminals.services import sessions as session_services

RING_BYTES = 1 << 20
HIGH_WATER = 256 * 1024
LOW_WATER = HIGH_WATER // 4
CHUNK = 32 * 1024
TICK = 1.0  # how often limits are checked
CONNECT_TIMEOUT = 10.0
LOGIN_TIMEOUT = 20.0
KEEPALIVE_SECONDS = 30
MAX_WRITE_BUFFER = 1 << 20
FRAME = struct.Struct(">Q")  # output frames: the seq of their first byte, then the bytes

_sessions: dict[int, Session] = {}
_starting: dict[int, asyncio.Future[Session]] = {}


class SessionError(Exception):
    """A session that can't start or continue: ``code`` is the close code for the viewer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Viewer(Protocol):
    async def send_output(self, frame: bytes) -> None: ...

    async def send_event(self, event: dict[str, Any]) -> None: ...

    async def ended(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class Attachment:
    viewer: Viewer
    sent: int
    acked: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass
class Limits:
    grace: float
    idle: float
    max_length: float

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            grace=float(settings.TERMINAL_GRACE_SECONDS),
            idle=float(settings.TERMINAL_IDLE_SECONDS),
            max_length=float(settings.TERMINAL_MAX_SECONDS),
        )


class _Channel(asyncssh.SSHClientSession[bytes]):
    def __init__(self, session: Session) -> None:
        self.session = session

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.session.output(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.remote_closed()


class _Client(asyncssh.SSHClient):
    """Trust on first use: with no pinned key any key passes (and is pinned after the
    handshake); with one, asyncssh checks it and a different key lands here and is refused."""

    def __init__(self, trust_first: bool) -> None:
        self.trust_first = trust_first
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        return self.trust_first


class Session:
    def __init__(self, row: TerminalSession, limits: Limits) -> None:
        self.id = row.pk
        self.owner_id = row.owner_id
        self.limits = limits
        self.ring = Ring(RING_BYTES)
        self.attachments: list[Attachment] = []
        self.floor = 0  # the last acknowledged seq while no viewer is attached
        self.paused = False
        self.closed = False
        self.bytes_in = 0
        self.loop = asyncio.get_running_loop()
        self.started = self.last_activity = self.loop.time()
        self.detached_at: float | None = self.started
        self.conn: asyncssh.SSHClientConnection | None = None
        self.jump: asyncssh.SSHClientConnection | None = None  # the jump host's connection
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.recorder: Recorder | None = None  # asciinema v2, when the org records
        self.recording_id: int | None = None

    # --- output -------------------------------------------------------------------------
    def output(self, data: bytes) -> None:
        self.ring.append(data)
        if self.recorder is not None:
            self.recorder.output(data)
        self.last_activity = self.loop.time()
        for attachment in self.attachments:
            attachment.wake.set()
        self._flow()

    def _lowest_ack(self) -> int:
        if self.attachments:
            return min(a.acked for a in self.attachments)
        return self.floor

    def _flow(self) -> None:
        behind = self.ring.end - self._lowest_ack()
        if self.chan is None:
            return
        if not self.paused and behind >= HIGH_WATER:
            self.paused = True
            self.chan.pause_reading()
        elif self.paused and behind <= LOW_WATER:
            self.paused = False
            self.chan.resume_reading()

    async def _pump(self, attachment: Attachment) -> None:
        while not self.closed:
            window = attachment.acked + HIGH_WATER - attachment.sent
            if attachment.sent < self.ring.end and window > 0:
                seq = max(attachment.sent, self.ring.start)
                data = self.ring.since(seq, min(CHUNK, window))
                attachment.sent = seq + len(data)
                await attachment.viewer.send_output(FRAME.pack(seq) + data)
                continue
            attachment.wake.clear()
            await attachment.wake.wait()

    # --- viewers ------------------------------------------------------------------------
    async def attach(self, viewer: Viewer, last_seq: int) -> Attachment:
        """Replays from ``last_seq`` (what the viewer already has) and follows the output."""
        if last_seq > self.ring.end:
            raise SessionError(4400, "last_seq is ahead of the session")
        start = max(last_seq, self.ring.start)
        attachment = Attachment(viewer, sent=start, acked=start)
        await viewer.send_event(
            {
                "type": "attached",
                "session": self.id,
                "seq": start,
                "end": self.ring.end,
                "missed": start - last_seq,  # bytes that fell out of the 1 MiB ring
            }
        )
        self.attachments.append(attachment)
        attachment.task = asyncio.create_task(self._pump(attachment))
        self.detached_at = None
        self._flow()
        await sync_to_async(session_services.session_mark)(self.id, SessionState.ATTACHED)
        return attachment

    async def detach(self, attachment: Attachment) -> None:
        if attachment not in self.attachments:
            return
        self.attachments.remove(attachment)
        if attachment.task is not None:
            attachment.task.cancel()
        if not self.attachments and not self.closed:
            self.floor = max(self.floor, attachment.acked)
            self.detached_at = self.loop.time()
            await sync_to_async(session_services.session_mark)(self.id, SessionState.DETACHED)
        self._flow()

    def ack(self, attachment: Attachment, seq: int) -> None:
        attachment.acked = max(attachment.acked, min(seq, attachment.sent))
        self.floor = max(self.floor, attachment.acked)
        attachment.wake.set()
        self._flow()

    # --- input --------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        if self.chan is None or self.closed:
            return
        # asyncssh offers no drain event on a channel: poll while the remote reads slowly
        while self.chan.get_write_buffer_size() > MAX_WRITE_BUFFER and not self.closed:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.chan.write(data)
        if self.recorder is not None:
            self.recorder.input(data)
        self.bytes_in += len(data)
        self.last_activity = self.loop.time()

    def resize(self, cols: int, rows: int) -> None:
        if self.chan is not None and not self.closed:
            self.chan.change_terminal_size(cols, rows)
            if self.recorder is not None:
                self.recorder.resize(cols, rows)

    # --- lifetime -----------------------------------------------------------------------
    async def _watch(self) -> None:
        while not self.closed:
            await asyncio.sleep(TICK)
            if self.recorder is not None:
                self.recorder.flush()
            now = self.loop.time()
            if now - self.last_activity > self.limits.idle:
                await self.close("idle timeout", CLOSE_SESSION_GONE)
            elif now - self.started > self.limits.max_length:
                await self.close("maximum length", CLOSE_SESSION_GONE)
            elif self.detached_at is not None and now - self.detached_at > self.limits.grace:
                await self.close("detached too long", CLOSE_SESSION_GONE)

    def remote_closed(self) -> None:
        if not self.closed:
            self.loop.create_task(self.close("shell exited", CLOSE_NORMAL))

    async def close(self, reason: str, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        _sessions.pop(self.id, None)
        if self.conn is not None:
            self.conn.close()
        if self.jump is not None:
            self.jump.close()
        viewers = list(self.attachments)
        self.attachments.clear()
        for attachment in viewers:
            if attachment.task is not None:
                attachment.task.cancel()
            await self._flush(attachment)
        # the row and the recording are final before any viewer hears of the end
        await self.finish_recording()
        await sync_to_async(session_services.session_end)(
            self.id, reason=reason, bytes_in=self.bytes_in, bytes_out=self.ring.end
        )
        for attachment in viewers:
            with contextlib.suppress(Exception):
                await attachment.viewer.send_event({"type": "closed", "reason": reason})
                await attachment.viewer.ended(code, reason)
        if self.watchdog is not None and self.watchdog is not asyncio.current_task():
            self.watchdog.cancel()

    async def finish_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None and self.recording_id is not None:
            size, duration = recorder.close()
            await sync_to_async(recording_services.recording_finish)(
                self.recording_id, size=size, duration=duration
            )

    async def _flush(self, attachment: Attachment) -> None:
        """The last output (the shell's goodbye) before the close, within the window."""
        with contextlib.suppress(Exception):
            while attachment.sent < self.ring.end:
                data = self.ring.since(attachment.sent, CHUNK)
                await attachment.viewer.send_output(FRAME.pack(attachment.sent) + data)
                attachment.sent += len(data)


def get(session_id: int) -> Session | None:
    return _sessions.get(session_id)


async def obtain(row: TerminalSession) -> Session:
    """The live session of ``row``, started on its first attach (one start at a time)."""
    live = _sessions.get(row.pk)
    if live is not None:
        return live
    if row.state != SessionState.STARTING:  # this process restarted since: the shell is gone
        await sync_to_async(session_services.session_end)(
            row.pk, reason="server restarted", bytes_in=0, bytes_out=0
        )
        raise SessionError(CLOSE_SESSION_GONE, "The session ended when the server restarted.")
    pending = _starting.get(row.pk)
    if pending is None:
        pending = _starting[row.pk] = asyncio.get_running_loop().create_future()
        try:
            session = await _start(row)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            _starting.pop(row.pk, None)
        pending.set_result(session)
    return await asyncio.shield(pending)


async def _start(row: TerminalSession) -> Session:
    try:
        session = await _connect(row)
    except SessionError as exc:
        await sync_to_async(session_services.session_end)(
            row.pk, reason=exc.message[:40], bytes_in=0, bytes_out=0
        )
        raise
    _sessions[row.pk] = session
    session.watchdog = asyncio.create_task(session._watch())
    return session


def _node_of(miner_id: int) -> int | None:
    return Miner.unscoped.filter(pk=miner_id).values_list("node_id", flat=True).first()


def _host_login(host_id: int) -> tuple[SshHost, str, SshHost | None, str]:
    host = SshHost.unscoped.select_related("jump_host").get(pk=host_id)
    jump = host.jump_host
    jump_secret = host_services.host_secret(jump) if jump is not None else ""
    return host, host_services.host_secret(host), jump, jump_secret


async def _login(
    host: SshHost, secret: str, tunnel: asyncssh.SSHClientConnection | None = None
) -> asyncssh.SSHClientConnection:
    """An SSH connection to ``host`` (directly, or through ``tunnel``: the jump host's), its
    host key trusted on first use and checked after."""
    if host.presented_key:
        raise SessionError(
            CLOSE_HOST_KEY_CHANGED, f"The host key of {host.name} changed; re-trust it first."
        )
    try:
        address = dial.check_address(host.address)
    except AddressRefused as exc:
        raise SessionError(CLOSE_SSH_FAILED, str(exc)) from exc
    sock: socket.socket | None = None
    if tunnel is None:
        # a host on a node-owned miner is reached through that node (its allowlist decides)
        node_id = await sync_to_async(_node_of)(host.miner_id) if host.miner_id else None
        try:
            opening = (
                node_tunnel.open_socket(node_id, address, host.port)
                if node_id
                else _tcp(address, host.port)
            )
            sock = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        except (OSError, TimeoutError, node_tunnel.TunnelError) as exc:
            raise SessionError(CLOSE_SSH_FAILED, f"Can't reach {address}:{host.port}.") from exc
    client = _Client(trust_first=not host.host_key)
    trusted = [asyncssh.import_public_key(host.host_key)] if host.host_key else []
    auth: dict[str, Any] = (
        {"password": secret, "client_keys": None}
        if host.auth_method == AuthMethod.PASSWORD
        else {"client_keys": [asyncssh.import_private_key(secret)], "password": None}
    )
    route: dict[str, Any] = {"sock": sock} if sock is not None else {"tunnel": tunnel}
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                address,
                host.port,
                username=host.username,
                known_hosts=(trusted, [], []),
                client_factory=lambda: client,
                config=[],
                agent_path=None,
                gss_host=None,
                kbdint_auth=False,
                # asyncssh's connect_timeout spans the login too: through a jump host it
                # bounds the tunnel's connect plus the login; directly, _tcp bounded the
                # connect and login_timeout bounds the handshake and authentication
                connect_timeout=CONNECT_TIMEOUT + LOGIN_TIMEOUT if tunnel is not None else None,
                login_timeout=LOGIN_TIMEOUT,
                keepalive_interval=KEEPALIVE_SECONDS,
                keepalive_count_max=3,
                **route,
                **auth,
            ),
            CONNECT_TIMEOUT + LOGIN_TIMEOUT + 1,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        if sock is not None:
            sock.close()
        if client.presented is not None:
            line = client.presented.export_public_key().decode().strip()
            await sync_to_async(host_services.host_key_seen)(host.pk, line)
        raise SessionError(CLOSE_HOST_KEY_CHANGED, f"The host key of {host.name} changed.") from exc
    except asyncssh.PermissionDenied as exc:
        if sock is not None:
            sock.close()
        raise SessionError(CLOSE_SSH_FAILED, f"{host.name} refused the login.") from exc
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        if sock is not None:
            sock.close()
        raise SessionError(CLOSE_SSH_FAILED, f"SSH to {host.name} failed: {exc}") from exc
    key = conn.get_server_host_key()
    line = key.export_public_key().decode().strip() if key is not None else ""
    if not await sync_to_async(host_services.host_key_seen)(host.pk, line):
        conn.close()
        raise SessionError(CLOSE_HOST_KEY_CHANGED, f"The host key of {host.name} changed.")
    return conn


async def connect_host(
    host_id: int,
) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHClientConnection | None]:
    """A logged-in connection to the host (and the jump host's, to close with it); also what
    remote commands (``terminals.remote``) run over."""
    try:
        host, secret, jump_host, jump_secret = await sync_to_async(_host_login)(host_id)
    except (SshHost.DoesNotExist, ApplicationError, crypto.SecretError) as exc:
        raise SessionError(CLOSE_SSH_FAILED, "The host's credentials can't be read.") from exc
    jump = await _login(jump_host, jump_secret) if jump_host is not None else None
    try:
        conn = await _login(host, secret, jump)
    except SessionError:
        if jump is not None:
            jump.close()
        raise
    return conn, jump


async def _connect(row: TerminalSession) -> Session:
    conn, jump = await connect_host(row.host_id)
    session = Session(row, Limits.from_settings())
    session.conn, session.jump = conn, jump
    plan = await sync_to_async(recording_services.recording_start)(row.pk)
    if plan is not None:
        session.recording_id = plan.id
        session.recorder = Recorder(
            plan.path,
            cols=row.cols,
            rows=row.rows,
            term=row.term,
            with_input=plan.with_input,
            title=plan.title,
        )
    try:
        chan, _ = await conn.create_session(
            lambda: _Channel(session),
            term_type=row.term,
            term_size=(row.cols, row.rows),
            encoding=None,
        )
    except (OSError, asyncssh.Error) as exc:
        conn.close()
        if jump is not None:
            jump.close()
        await session.finish_recording()
        raise SessionError(CLOSE_SSH_FAILED, f"No shell: {exc}") from exc
    session.chan = chan
    return session


async def _tcp(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def close_local(session_id: int, reason: str) -> bool:
    """End a session held by this process from any thread; False when it isn't here."""
    session = _sessions.get(session_id)
    if session is None:
        return False
    asyncio.run_coroutine_threadsafe(session.close(reason, CLOSE_SESSION_GONE), session.loop)
    return True
