"""ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.urls import re_path

django_asgi_app = get_asgi_application()

from config.routing import websocket_urlpatterns  # noqa: E402


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Any path no route matches: refuse the handshake (HTTP 403) instead of the router's
    exception, which daphne turns into a 500 and a logged traceback."""

    async def connect(self) -> None:
        await self.close()


if os.environ.get("FLEET_EMBEDDED_SCHEDULER") == "1":
    from config.scheduler import start_embedded_scheduler

    start_embedded_scheduler()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter([*websocket_urlpatterns, re_path(r"", UnknownRouteConsumer.as_asgi())])
            )
        ),
    }
)
