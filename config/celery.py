"""Celery app. Embedded mode runs tasks eagerly in-process (CELERY_TASK_ALWAYS_EAGER).

Routing: a poll shard goes to queue ``poll.<k>`` (``k`` = the shard's miners' id modulo
``FLEET_POLL_QUEUES``), each served by one single-process worker, so a miner is always polled
by the same process; every other task uses the default queue (``celery``).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

POLL_SHARD_TASK = "fleet.poll_shard"


def poll_queue(k: int) -> str:
    return f"poll.{k}"


def route_task(
    name: str, args: Any, kwargs: dict[str, Any] | None, options: Any, task: Any = None, **kw: Any
) -> dict[str, str] | None:
    """A poll shard to its queue; ``None`` leaves every other task on the default route."""
    if name == POLL_SHARD_TASK and kwargs and kwargs.get("queue") is not None:
        return {"queue": poll_queue(int(kwargs["queue"]))}
    return None


app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = (route_task,)
app.autodiscover_tasks()
