"""Celery tasks: take ids or nothing, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from fleet.services import jobs, polling, retention


@shared_task(name="fleet.poll_due")
def poll_due() -> int:
    """The beat tick: claim the due miners and fan them out in shards."""
    shards = polling.due_shards()
    for shard in shards:
        poll_shard.delay(shard)
    return len(shards)


@shared_task(name="fleet.poll_shard", acks_late=True)
def poll_shard(miner_ids: list[int]) -> dict[str, int]:
    summary = polling.poll_shard(miner_ids)
    return {"polled": summary.polled, "ok": summary.ok, "failed": summary.failed}


@shared_task(name="fleet.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    jobs.job_execute(job_id)


@shared_task(name="fleet.rollup_samples")
def rollup_samples() -> dict[str, int]:
    written = retention.rollup()
    return {"rollups": written, **retention.prune()}
