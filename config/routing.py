"""WebSocket routes. Every consumer declares ``rw_permission`` (see accounts.routes)."""

from typing import Any

websocket_urlpatterns: list[Any] = []
