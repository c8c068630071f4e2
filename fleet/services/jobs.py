"""Miner actions, single and bulk: authorized per miner at its site, staggered, audited.

``job_create`` checks everything up front (permission at every miner's site — a refusal
refuses the whole job; parameters; capabilities, where a miner that lacks one is skipped with
the reason, or the single action is a 400) and queues the job; ``job_execute`` (a task) runs it
in batches, one activity event per miner with its result, and stops between batches when
cancelled.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Organization
from accounts.services.activity import activity_record, records_refusals
from fleet import crypto, dial, live, runtime
from fleet.actions import ACTIONS, Action, ActionError, Params, needed_capability, render_worker
from fleet.models import ItemStatus, Job, JobItem, JobStatus, Miner
from fleet.netguard import AddressRefused
from fleet.nodes.actions import NodeCall, node_action, node_call
from fleet.protocol import JobMessage, JobProgress, org_group
from fleet.services.credentials import credentials_for
from miners import Credentials, DeviceInfo, MinerError, Registry

MAX_JOB_MINERS = 20_000


def action_for(kind: str) -> Action:
    action = ACTIONS.get(kind)
    if action is None:
        raise ApplicationError(
            f"Unknown action '{kind}'; use one of {', '.join(ACTIONS)}.", field="kind"
        )
    return action


def clean_params(action: Action, params: object) -> Params:
    if not isinstance(params, dict):
        raise ApplicationError("The action's parameters are a JSON object.", field="params")
    try:
        return action.clean(params)
    except ActionError as exc:
        raise ApplicationError("Check the action's parameters.", errors=exc.errors) from exc


def lacks(miner: Miner, action: Action, params: Params) -> str:
    """Why ``miner`` can't do this action ('' when it can)."""
    needed = needed_capability(action, params)
    if needed is not None and str(needed) not in miner.capabilities:
        return f"{miner.name} ({miner.model or miner.driver}) can't {action.kind.replace('_', ' ')}: no {needed} support"
    return ""


def _masked(params: Params) -> Params:
    if "pools" not in params:
        return params
    return {
        "pools": [{**p, "password": "***" if p.get("password") else ""} for p in params["pools"]]
    }


@records_refusals("job.create")
@transaction.atomic
def job_create(
    *,
    actor: Actor,
    org: Organization,
    kind: str,
    params: object,
    miners: Sequence[Miner],
    single: bool = False,
    batch_size: int | None = None,
    interval_s: float | None = None,
) -> Job:
    action = action_for(kind)
    cleaned = clean_params(action, params)
    if not miners:
        raise ApplicationError("No miners selected.", field="miners")
    if len(miners) > MAX_JOB_MINERS:
        raise ApplicationError(f"At most {MAX_JOB_MINERS} miners per job.", field="miners")
    for miner in miners:
        if miner.org_id != org.pk:
            raise ApplicationError("Those miners belong to another organization.", field="miners")
        authorize_on(actor, action.permission, miner)
    reasons = {m.pk: lacks(m, action, cleaned) for m in miners}
    if single and reasons[miners[0].pk]:
        raise ApplicationError(reasons[miners[0].pk], field="kind")
    job = Job.unscoped.create(
        org=org,
        kind=kind,
        params=_masked(cleaned),
        created_by=actor.user,
        actor_label=actor.label[:200],
        total=len(miners),
        batch_size=batch_size or settings.FLEET_JOB_BATCH_SIZE,
        interval_s=settings.FLEET_JOB_INTERVAL if interval_s is None else interval_s,
    )
    job.sealed_params = crypto.encrypt(json.dumps(cleaned), org_id=org.pk, label=job.secret_label)
    job.save(update_fields=["sealed_params"])
    JobItem.objects.bulk_create(
        JobItem(
            job=job,
            miner=m,
            site_id=m.site_id,
            miner_name=m.name,
            status=ItemStatus.SKIPPED if reasons[m.pk] else ItemStatus.PENDING,
            error=reasons[m.pk][:500],
        )
        for m in miners
    )
    skipped = sum(1 for r in reasons.values() if r)
    if skipped:
        Job.unscoped.filter(pk=job.pk).update(failed=skipped)
    activity_record(
        actor=actor,
        verb="job.create",
        org=org,
        target=job,
        details={"kind": kind, "miners": len(miners), "params": _masked(cleaned)},
    )
    transaction.on_commit(lambda: enqueue_job(job.pk))
    return job


def enqueue_job(job_id: int) -> None:
    """Celery in production; a background thread in embedded mode (eager tasks would hold the
    request for the whole staggered run)."""
    from fleet import tasks

    if settings.EMBEDDED:
        threading.Thread(target=job_execute, args=(job_id,), daemon=True).start()
    else:
        tasks.run_job.delay(job_id)


@records_refusals("job.cancel")
@transaction.atomic
def job_cancel(*, actor: Actor, job: Job) -> Job:
    """Stops the job before its next batch; miners already acted on stay acted on. Whoever may
    run the action in the org may stop it."""
    authorize(actor, action_for(job.kind).permission, job.org_id)
    if job.status in (JobStatus.DONE, JobStatus.CANCELLED):
        return job
    Job.unscoped.filter(pk=job.pk).update(cancel_requested=True)
    if job.status == JobStatus.QUEUED:
        _finish(job.pk, JobStatus.CANCELLED)
    activity_record(actor=actor, verb="job.cancel", org=job.org_id, target=job)
    job.refresh_from_db()
    return job


def _finish(job_id: int, status: str) -> None:
    JobItem.objects.filter(job_id=job_id, status=ItemStatus.PENDING).update(
        status=ItemStatus.CANCELLED
    )
    Job.unscoped.filter(pk=job_id).update(status=status, finished_at=timezone.now())
    _progress(job_id)


def _progress(job_id: int) -> None:
    job = Job.unscoped.filter(pk=job_id).first()
    if job is None:
        return
    progress = JobProgress(
        id=job.pk,
        kind=job.kind,
        status=job.status,
        total=job.total,
        done=job.done,
        failed=job.failed,
    )
    transaction.on_commit(
        lambda: live.publish(org_group(job.org_id), JobMessage(type="job", job=progress))
    )


def _worker_values(miner: Miner) -> dict[str, str]:
    return {
        "site": miner.site.slug,
        "name": miner.name,
        "serial": miner.serial,
        "mac": miner.mac.replace(":", ""),
        "host": miner.host,
        "rack": miner.rack,
        "position": miner.position,
    }


def _for_miner(action: Action, params: Params, miner: Miner) -> Params:
    if action.kind != "set_pools":
        return params
    values = _worker_values(miner)
    return {"pools": [{**p, "user": render_worker(p["user"], values)} for p in params["pools"]]}


def job_execute(job_id: int) -> None:
    """Run a queued job to the end (or its cancellation), batch by batch."""
    job = Job.unscoped.filter(pk=job_id, status=JobStatus.QUEUED).first()
    if job is None:
        return
    Job.unscoped.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    action = ACTIONS[job.kind]
    params: Params = json.loads(
        crypto.decrypt(job.sealed_params or b"", org_id=job.org_id, label=job.secret_label)
    )
    actor = Actor.for_user(job.created_by) if job.created_by else Actor.system(job.actor_label)
    pending = list(
        JobItem.objects.filter(job=job, status=ItemStatus.PENDING)
        .select_related("miner__site")
        .order_by("id")
    )
    size = max(1, job.batch_size)
    for start in range(0, len(pending), size):
        if Job.unscoped.filter(pk=job.pk, cancel_requested=True).exists():
            _finish(job.pk, JobStatus.CANCELLED)
            return
        if start:
            time.sleep(job.interval_s)
        _run_batch(job, action, params, pending[start : start + size], actor)
    status = (
        JobStatus.CANCELLED
        if Job.unscoped.filter(pk=job.pk, cancel_requested=True).exists()
        else JobStatus.DONE
    )
    _finish(job.pk, status)


def _run_batch(
    job: Job, action: Action, params: Params, items: list[JobItem], actor: Actor
) -> None:
    calls: list[tuple[DeviceInfo, Credentials | None, Params] | NodeCall | str] = []
    for item in items:
        miner = item.miner
        if miner is None:
            calls.append("The miner was deleted.")
            continue
        if miner.node_id is not None:  # its fleet node dials it: a signed command
            calls.append(node_call(miner, _for_miner(action, params, miner), item.pk))
            continue
        if miner.managed_by != "cloud":
            calls.append("Nobody dials this miner: its fleet node was revoked.")
            continue
        try:
            dial.check_address(miner.host)
        except AddressRefused as exc:
            calls.append(str(exc))
            continue
        calls.append(
            (
                miner.device_info_for_dial(),
                credentials_for(miner),
                _for_miner(action, params, miner),
            )
        )

    async def work(registry: Registry) -> list[str]:
        async def one(call: tuple[DeviceInfo, Credentials | None, Params] | NodeCall | str) -> str:
            if isinstance(call, str):
                return call
            if isinstance(call, NodeCall):
                return await node_action(call, action.kind, actor)
            info, credentials, miner_params = call
            driver = registry.get(info.driver)
            device = driver.connect(
                info,
                credentials or driver.default_credentials or Credentials(""),
                timeout=dial.CALL_TIMEOUT,
            )
            try:
                await action.call(device, miner_params)
            except MinerError as exc:
                return exc.message[:500] or exc.kind
            finally:
                await device.close()
            return ""

        return list(await asyncio.gather(*(one(c) for c in calls)))

    errors = runtime.run(work, timeout=dial.CALL_TIMEOUT + 10)
    now = timezone.now()
    for item, error in zip(items, errors, strict=True):
        item.status = ItemStatus.FAILED if error else ItemStatus.OK
        item.error = error
        item.finished_at = now
        if item.miner is not None:
            activity_record(
                actor=actor,
                verb=f"miner.{job.kind}",
                org=job.org_id,
                site=item.miner.site_id,
                target=item.miner,
                result="failed" if error else "ok",
                details={
                    "job": job.pk,
                    "params": _masked(_for_miner(action, params, item.miner)),
                    **({"error": error} if error else {}),
                },
            )
    JobItem.objects.bulk_update(items, ["status", "error", "finished_at"])
    if action.kind == "set_power_target" and params.get("watts") is not None:
        # the next poll confirms it (telemetry_ingest): until then it shows as not applied
        took = [i.miner_id for i, e in zip(items, errors, strict=True) if not e and i.miner_id]
        Miner.unscoped.filter(pk__in=took).update(requested_power_target_w=params["watts"])
    failed = sum(1 for e in errors if e)
    Job.unscoped.filter(pk=job.pk).update(
        done=F("done") + len(items) - failed, failed=F("failed") + failed
    )
    _progress(job.pk)
