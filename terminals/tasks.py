"""Celery tasks: take ids or nothing, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from terminals.services import recordings


@shared_task(name="terminals.prune_recordings")
def prune_recordings() -> int:
    return recordings.recordings_prune()
