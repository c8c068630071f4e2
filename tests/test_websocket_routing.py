"""The real ASGI app: a WebSocket to a path no route serves is refused, never an exception."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/ws/no-such-route/", "/", "/api/v1/me/"])
async def test_unknown_websocket_path_is_refused_not_an_error(path: str) -> None:
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected is False
    await communicator.wait(timeout=1)
