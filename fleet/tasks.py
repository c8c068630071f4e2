"""Celery tasks: take ids or nothing, call a service, nothing else."""

from __future__ import annotations

from celery import shared_task

from fleet.services import jobs, polling, retention


@shared_task(name="fleet.poll_due")
def poll_due() -> int:
    """The beat tick: claim the due miners and fan them out in shards, each to its queue
    (``poll.<k>``, routed by config.celery)."""
    shards = polling.due_shards()
    polling.mark_sent(shards)
    for shard in shards:
        poll_shard.apply_async(
            args=(shard.miner_ids,), kwargs={"queue": shard.queue, "scheduled": shard.scheduled}
        )
    return len(shards)


@shared_task(name="fleet.poll_shard", acks_late=True)
def poll_shard(
    miner_ids: list[int], queue: int | None = None, scheduled: float | None = None
) -> dict[str, int]:
    summary = polling.poll_shard(miner_ids, queue=queue, scheduled=scheduled)
    return {"polled": summary.polled, "ok": summary.ok, "failed": summary.failed}


@shared_task(name="fleet.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    jobs.job_execute(job_id)


@shared_task(name="fleet.rollup_samples")
def rollup_samples() -> dict[str, int]:
    written = retention.rollup()
    return {"rollups": written, **retention.prune()}


@shared_task(name="fleet.nodes_housekeeping")
def nodes_housekeeping() -> dict[str, int]:
    """Expire unconfirmed registrations (24 h), time out commands nobody acked, and tell the
    browsers about nodes that went stale or offline by silence alone."""
    from fleet.nodes.commands import commands_expire
    from fleet.nodes.enrollment import nodes_expire_unconfirmed
    from fleet.nodes.live import node_states_sweep

    return {
        "expired_nodes": nodes_expire_unconfirmed(),
        "timed_out": commands_expire(),
        "state_changes": node_states_sweep(),
    }
