"""Celery tasks: take ids or nothing, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from proxy.refresh import tokens_refresh_due


@shared_task(name="proxy.refresh_tokens")
def refresh_tokens() -> int:
    """The beat tick: renew tokens of miners in use before they expire."""
    return tokens_refresh_due()
