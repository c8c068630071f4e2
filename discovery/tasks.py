"""Celery tasks: take ids, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from discovery import pairing, schedule, services


@shared_task(name="discovery.run", acks_late=True)
def run_discovery(run_id: int) -> None:
    services.run_execute(run_id)


@shared_task(name="discovery.pair", acks_late=True)
def pair_devices(job_id: int) -> None:
    pairing.pairing_execute(job_id)


@shared_task(name="discovery.housekeeping")
def housekeeping() -> dict[str, int]:
    """Finish runs whose node command ended or whose deadline passed; start the saved
    per-site rescans that are due."""
    return {"finished": services.runs_sweep(), "rescans": schedule.rescans_due()}
