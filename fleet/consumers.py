"""``/ws/live/``: org- and site-scoped live updates for browsers. Thin: authorize, join the
groups the caller may see, relay (telemetry coalesced per second), re-check periodically."""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.models import Site, grants_for
from accounts.sso.session import sso_login_current
from fleet import live
from fleet.observability import LIVE_DROPPED
from fleet.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_MALFORMED,
    CLOSE_UNAUTHENTICATED,
    org_group,
    site_group,
)

FLUSH_SECONDS = 1.0
RECHECK_SECONDS = 60.0
MAX_PENDING = 20_000
QUEUE_SIZE = 1000
MAX_JOBS_SEEN = 1000


def visible_groups(user: Any) -> set[str]:
    """Site groups where the caller reads miners (telemetry, jobs: a job's events go to the
    groups of its sites); org groups (nodes, jobs with no site left) where they do org-wide."""
    grants = grants_for(user)
    sites = Site.objects.restrict(user, "miner:read").values_list("id", "org_id")
    groups = {site_group(site_id) for site_id, _org in sites}
    groups |= {org_group(org) for org in grants.orgs_with("miner:read")}
    return groups


def session_user_id(session_key: str | None) -> str | None:
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    if not sso_login_current(store):  # an SSO login due for re-validation: 4401, page re-auths
        return None
    value = store.get("_auth_user_id")
    return str(value) if value is not None else None


class LiveConsumer(AsyncJsonWebsocketConsumer):
    rw_permission = "miner:read"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.tasks: list[asyncio.Task[None]] = []
        self.joined: set[str] = set()
        session = self.scope.get("session")
        if (
            user is None
            or not user.is_authenticated
            or not await database_sync_to_async(sso_login_current)(session)
        ):
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = await database_sync_to_async(visible_groups)(user)
        if not groups:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.pending: dict[int, dict[str, Any]] = {}
        self.jobs_seen: dict[Any, tuple[Any, ...]] = {}
        self.dropped = 0
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        await self._join(groups)  # before accepting: nothing published after "open" is missed
        await self.accept()
        self.tasks = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._recheck_loop()),
        ]
        if settings.EMBEDDED:
            self.tasks.append(asyncio.create_task(self._local_loop()))

    async def disconnect(self, code: int) -> None:
        for task in getattr(self, "tasks", []):
            task.cancel()
        await self._leave(set(getattr(self, "joined", set())))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only ping (``{"type": "ping"}``); a frame that isn't one closes with 4400."""
        try:
            content = json.loads(text_data or "")
        except ValueError:
            content = None
        if (
            not isinstance(content, dict)
            or content.get("type") != "ping"
            or len(text_data or "") > 1024
        ):
            await self.close(code=CLOSE_MALFORMED)
            return
        await self.send_json({"type": "pong"})

    # --- groups -----------------------------------------------------------------------------
    async def _join(self, groups: set[str]) -> None:
        for group in groups - self.joined:
            if settings.EMBEDDED:
                live.subscribe_local(group, self.inbox)
            elif self.channel_layer is not None:
                await self.channel_layer.group_add(group, self.channel_name)
        self.joined |= groups

    async def _leave(self, groups: set[str]) -> None:
        if settings.EMBEDDED:
            for group in groups:
                live.unsubscribe_local(group, self.inbox)
        elif self.channel_layer is not None:
            for group in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        self.joined -= groups

    # --- messages ---------------------------------------------------------------------------
    async def live_message(self, event: dict[str, Any]) -> None:
        await self._take(event["payload"])

    async def _local_loop(self) -> None:
        while True:
            event = await self.inbox.get()
            await self._take(event["payload"])

    async def _take(self, payload: dict[str, Any]) -> None:
        if payload.get("type") == "job" and self._seen_job(payload.get("job")):
            return  # the same progress through a second of its sites' groups
        if payload.get("type") != "telemetry":
            await self.send_json(payload)
            return
        for delta in payload.get("miners", []):
            if len(self.pending) >= MAX_PENDING and delta["id"] not in self.pending:
                self.dropped += 1
                LIVE_DROPPED.inc()
                continue
            self.pending[delta["id"]] = delta

    def _seen_job(self, job: Any) -> bool:
        if not isinstance(job, dict):
            return False
        seen = self.jobs_seen
        state = (job.get("status"), job.get("done"), job.get("failed"))
        if seen.get(job.get("id")) == state:
            return True
        if len(seen) >= MAX_JOBS_SEEN:
            seen.clear()
        seen[job.get("id")] = state
        return False

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self.pending:
                batch, self.pending = list(self.pending.values()), {}
                await self.send_json({"type": "telemetry", "miners": batch})
            if self.dropped:
                count, self.dropped = self.dropped, 0
                await self.send_json({"type": "dropped", "count": count})

    async def _recheck_loop(self) -> None:
        """The login may end (sign-out, expiry, revoke) or grants change: follow them."""
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            await self.recheck()

    async def recheck(self) -> None:
        user = self.scope["user"]
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        current = await database_sync_to_async(session_user_id)(key)
        if current != str(user.pk):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        fresh = await database_sync_to_async(_reload)(user)
        if fresh is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = await database_sync_to_async(visible_groups)(fresh)
        await self._leave(self.joined - groups)
        await self._join(groups)
        if not groups:
            with contextlib.suppress(Exception):
                await self.close(code=CLOSE_FORBIDDEN)


def _reload(user: Any) -> Any:
    from accounts.models import User

    return User.objects.filter(pk=user.pk, is_active=True).first()
