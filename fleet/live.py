"""Publishing live updates to browsers, from any process or thread.

With Redis (production) this is the Channels layer: any web replica's sockets get what a
Celery worker publishes. In the embedded mode there is one process and an in-memory layer,
whose queues are bound to the web server's event loop; publishers there run on other threads
(the in-process scheduler), so the message is handed to that loop with
``call_soon_threadsafe`` instead of being pushed from a foreign loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

_local: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]] = {}
_lock = threading.Lock()
_sending: set[asyncio.Task[None]] = set()


def publish(group: str, message: Mapping[str, Any]) -> None:
    payload = {"type": "live.message", "payload": dict(message)}
    if settings.EMBEDDED:
        with _lock:
            subscribers = list(_local.get(group, ()))
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, payload)
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(layer.group_send)(group, payload)
    else:  # called from code running on an event loop: don't block it
        task = loop.create_task(layer.group_send(group, payload))
        _sending.add(task)
        task.add_done_callback(_sending.discard)


def _offer(queue: asyncio.Queue[dict[str, Any]], payload: dict[str, Any]) -> None:
    if not queue.full():
        queue.put_nowait(payload)


def subscribe_local(group: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
    with _lock:
        _local.setdefault(group, set()).add((asyncio.get_running_loop(), queue))


def unsubscribe_local(group: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
    with _lock:
        subscribers = _local.get(group, set())
        for entry in [e for e in subscribers if e[1] is queue]:
            subscribers.discard(entry)
