"""WebSocket routes. Every consumer declares ``rw_permission`` (see accounts.routes)."""

from typing import Any

from django.urls import path

from fleet.consumers import LiveConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/live/", LiveConsumer.as_asgi()),
]
