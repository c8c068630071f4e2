"""A small ASGI client for ``config.asgi.application`` (the proxy lives outside Django's
handler, so Django's test client can't reach it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.test import Client

from accounts.models import User


class LoopbackServer:
    """An aiohttp app served on a free 127.0.0.1 port once :meth:`start` has run."""

    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: int = 0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """Cookies of one signed-in browser (or none) and a way to call the ASGI app."""

    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    host: str = "testserver"

    def sign_in(self, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[
            settings.SESSION_COOKIE_NAME
        ].value
        request = HttpRequest()
        self.csrf = get_token(request)
        self.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        raw_path: bytes | None = None,
        query: str = "",
        write_headers: bool = True,
        on_send: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> Reply:
        from config.asgi import application

        sent = dict(headers or {})
        if self.cookies:
            sent.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if write_headers and method not in ("GET", "HEAD") and self.csrf:
            sent.setdefault("Origin", f"http://{self.host}")
            sent.setdefault("X-CSRFToken", self.csrf)
        sent.setdefault("Host", self.host)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": raw_path if raw_path is not None else path.encode(),
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            out.append(message)
            if on_send is not None:
                await on_send(message)

        await application(scope, receive, send)
        start = out[0]
        bodies = [m for m in out[1:] if m["type"] == "http.response.body"]
        return Reply(
            start["status"],
            [(k.decode(), v.decode()) for k, v in start["headers"]],
            b"".join(m.get("body", b"") for m in bodies),
            len(bodies),
        )
