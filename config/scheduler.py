"""In-process periodic ticks for the embedded mode (no Redis, no beat process).

Runs ``CELERY_BEAT_SCHEDULE`` entries on a daemon thread; tasks execute eagerly in-process.
Production runs ``celery -A config beat`` instead and never starts this.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_started = threading.Event()


def _run(schedule: dict[str, dict[str, Any]], stop: threading.Event) -> None:
    from celery import current_app

    current_app.loader.import_default_modules()
    next_run = {name: time.monotonic() + 5 for name in schedule}
    while not stop.wait(1.0):
        now = time.monotonic()
        for name, entry in schedule.items():
            if now < next_run[name]:
                continue
            next_run[name] = now + float(entry["schedule"])
            try:
                current_app.tasks[entry["task"]].apply(
                    args=entry.get("args", ()), kwargs=entry.get("kwargs", {})
                )
            except Exception:
                log.exception("periodic task %s failed", name)
            finally:
                close_old_connections()


def start_embedded_scheduler() -> threading.Event | None:
    """Start once per process, only in embedded mode. Returns the stop event."""
    if not settings.EMBEDDED or _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(
        target=_run, args=(settings.CELERY_BEAT_SCHEDULE, stop), name="embedded-beat", daemon=True
    ).start()
    log.info(
        "embedded scheduler started with %d periodic tasks", len(settings.CELERY_BEAT_SCHEDULE)
    )
    return stop
