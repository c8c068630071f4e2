"""ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.urls import re_path

django_asgi_app = get_asgi_application()

from config.routing import websocket_urlpatterns  # noqa: E402
from proxy.asgi import proxy_http  # noqa: E402


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Any path no route matches: refuse the handshake (HTTP 403) instead of the router's
    exception, which daphne turns into a 500 and a logged traceback."""

    async def connect(self) -> None:
        await self.close()


if os.environ.get("FLEET_EMBEDDED_SCHEDULER") == "1":
    from config.scheduler import start_embedded_scheduler

    start_embedded_scheduler()


def allow_registered_close_codes() -> None:
    """daphne closes through autobahn's public ``sendClose``, which takes only 1000 and
    3000-4999; RFC 6455 also registers 1001/1011/1012/1013, and fleet nodes get 1012 (service
    restart) after ``goaway`` when a replica drains, 1011 when their hello failed server-side. Those go out as a plain close frame."""
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in (1001, 1011, 1012, 1013):
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    WebSocketProtocol.serverClose = server_close


allow_registered_close_codes()
routes = URLRouter([*websocket_urlpatterns, re_path(r"", UnknownRouteConsumer.as_asgi())])
browser_websockets = AllowedHostsOriginValidator(AuthMiddlewareStack(routes))


async def websockets(scope: Any, receive: Any, send: Any) -> None:
    """Fleet nodes are not browsers: they send no Origin (the check that guards cookie
    sessions) and carry their own bearer session, so their stream skips both."""
    if scope.get("path", "").startswith("/ws/nodes/"):
        await routes(scope, receive, send)
    else:
        await browser_websockets(scope, receive, send)


async def http(scope: Any, receive: Any, send: Any) -> None:
    """``/api-proxy/`` skips Django's sync middleware stack (it authenticates for itself)."""
    if scope.get("path", "").startswith("/api-proxy/"):
        await proxy_http(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter({"http": http, "websocket": websockets})
