"""``/ws/terminals/{session_id}/``: a browser's view of one terminal session. Thin: check
the login and ``terminal:open`` (on connect and every reattach), then relay to the manager.

Frames from the browser (JSON text): ``attach {last_seq}`` first, then ``input {data}``
(at most 64 KiB: the page chunks pastes), ``resize {cols, rows}``, ``ack {seq}``, ``ping``.
Output goes out as binary frames: 8-byte big-endian seq of the first byte, then the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.errors import ApplicationError
from accounts.sso.session import sso_login_current
from fleet.consumers import session_user_id
from terminals import manager
from terminals.close_codes import (
    CLOSE_FORBIDDEN,
    CLOSE_MALFORMED,
    CLOSE_NOT_FOUND,
    CLOSE_OTHER_REPLICA,
    CLOSE_SESSION_GONE,
    CLOSE_UNAUTHENTICATED,
)
from terminals.models import SessionState, TerminalSession
from terminals.services.sessions import check_size, may_attach, session_claim

MAX_FRAME = 64 * 1024
RECHECK_SECONDS = 30.0


def _load(session_id: int, user: Any) -> tuple[TerminalSession | None, bool]:
    row = TerminalSession.unscoped.filter(pk=session_id).first()
    if row is None or row.owner_id != user.pk:
        return None, False
    return row, may_attach(user, row)


class TerminalConsumer(AsyncWebsocketConsumer):
    rw_permission = "terminal:open"

    async def connect(self) -> None:
        self.attachment: manager.Attachment | None = None
        self.session: manager.Session | None = None
        self.recheck_task: asyncio.Task[None] | None = None
        await self.accept()
        user = self.scope.get("user")
        if (
            user is None
            or not user.is_authenticated
            or not await database_sync_to_async(sso_login_current)(self.scope.get("session"))
        ):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.row, allowed = await database_sync_to_async(_load)(
            int(self.scope["url_route"]["kwargs"]["session_id"]), user
        )
        if self.row is None:
            await self.close(code=CLOSE_NOT_FOUND)
        elif not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
        elif self.row.state == SessionState.CLOSED:
            await self.close(code=CLOSE_SESSION_GONE)
        else:
            self.recheck_task = asyncio.create_task(self._recheck_loop())

    async def disconnect(self, code: int) -> None:
        if self.recheck_task is not None:
            self.recheck_task.cancel()
        if self.session is not None and self.attachment is not None:
            await self.session.detach(self.attachment)  # parked for the grace period

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "row", None) is None:
            return
        message = _parse(text_data)
        kind = message.get("type") if message is not None else None
        if message is None or kind not in _HANDLERS:
            await self.close(code=CLOSE_MALFORMED)
            return
        if (kind == "attach") != (self.attachment is None):
            await self.close(code=CLOSE_MALFORMED)  # attach once, first
            return
        await _HANDLERS[kind](self, message)

    async def _attach(self, message: dict[str, Any]) -> None:
        last_seq = message.get("last_seq", 0)
        if not _is_int(last_seq) or last_seq < 0:
            await self.close(code=CLOSE_MALFORMED)
            return
        replica = await database_sync_to_async(session_claim)(
            self.row.pk, settings.TERMINAL_REPLICA
        )
        if replica is None:
            await self.close(code=CLOSE_SESSION_GONE)
            return
        if replica != settings.TERMINAL_REPLICA:
            await self.close(code=CLOSE_OTHER_REPLICA)
            return
        try:
            self.session = await manager.obtain(self.row)
            self.attachment = await self.session.attach(self, last_seq)
        except manager.SessionError as exc:
            await self.send(text_data=json.dumps({"type": "error", "message": exc.message}))
            await self.close(code=exc.code)

    async def _input(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, str) or len(data) > MAX_FRAME:
            await self.close(code=CLOSE_MALFORMED)
        elif self.session is not None:
            await self.session.write(data.encode())

    async def _resize(self, message: dict[str, Any]) -> None:
        cols, rows = message.get("cols"), message.get("rows")
        if not (isinstance(cols, int) and isinstance(rows, int) and _is_int(cols)):
            await self.close(code=CLOSE_MALFORMED)
            return
        try:
            check_size(cols, rows)
        except ApplicationError:
            await self.close(code=CLOSE_MALFORMED)
            return
        if self.session is not None:
            self.session.resize(cols, rows)

    async def _ack(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            await self.close(code=CLOSE_MALFORMED)
        elif self.session is not None and self.attachment is not None:
            self.session.ack(self.attachment, seq)

    async def _ping(self, message: dict[str, Any]) -> None:
        await self.send(text_data='{"type": "pong"}')

    # --- manager.Viewer ---------------------------------------------------------------
    async def send_output(self, frame: bytes) -> None:
        await self.send(bytes_data=frame)

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event))

    async def ended(self, code: int, reason: str) -> None:
        self.attachment = None
        await self.close(code=code)

    # --- the login may end or grants change mid-session --------------------------------
    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            await self.recheck()

    async def recheck(self) -> None:
        user = self.scope["user"]
        key = getattr(self.scope.get("session"), "session_key", None)
        if await database_sync_to_async(session_user_id)(key) != str(user.pk):
            await self._park(CLOSE_UNAUTHENTICATED)
            return
        _row, allowed = await database_sync_to_async(_load)(self.row.pk, user)
        if not allowed:
            await self._park(CLOSE_FORBIDDEN)

    async def _park(self, code: int) -> None:
        if self.session is not None and self.attachment is not None:
            await self.session.detach(self.attachment)
        self.attachment = None
        with contextlib.suppress(Exception):
            await self.close(code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None or len(text) > MAX_FRAME * 2:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_HANDLERS = {
    "attach": TerminalConsumer._attach,
    "input": TerminalConsumer._input,
    "resize": TerminalConsumer._resize,
    "ack": TerminalConsumer._ack,
    "ping": TerminalConsumer._ping,
}
