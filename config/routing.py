"""WebSocket routes. Every consumer declares ``rw_permission`` (see accounts.routes)."""

from typing import Any

from django.urls import path

from fleet.consumers import LiveConsumer
from fleet.nodes.consumer import NodeControlConsumer
from terminals.consumer import TerminalConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/live/", LiveConsumer.as_asgi()),
    path("ws/nodes/control/", NodeControlConsumer.as_asgi()),
    path("ws/terminals/<int:session_id>/", TerminalConsumer.as_asgi()),
]
