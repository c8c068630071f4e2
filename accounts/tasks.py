"""Celery tasks: take ids or nothing, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from accounts.services.retention import history_prune


@shared_task(name="accounts.prune_history")
def prune_history() -> dict[str, int]:
    return history_prune()
