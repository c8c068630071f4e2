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
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError, Forbidden
from accounts.models import Organization, grants_for
from accounts.services.activity import activity_record, records_refusals
from fleet import crypto, dial, live, runtime
from fleet.actions import ACTIONS, Action, ActionError, Params, needed_capability, render_worker
from fleet.models import ItemStatus, Job, JobItem, JobStatus, Miner
from fleet.netguard import AddressRefused
from fleet.nodes.actions import NodeCall, node_action, node_call
from fleet.protocol import JobMessage, JobProgress, org_group, site_group
from fleet.services.credentials import credentials_for
from miners import Credentials, DeviceInfo, MinerError, Registry

MAX_JOB_MINERS = 20_000
CANCEL_POLL_S = 0.5  # how often the wait between batches looks for a cancel

# Job kinds of other apps that can be stopped (kind → the permission that stops them, at every
# site of its remaining items); registered from their AppConfig.ready (discovery's pairing).
_CANCELLABLE: dict[str, str] = {}


def job_kind_register(kind: str, permission: str) -> None:
    """Declare another app's job kind cancellable: its executor calls ``job_cancelled``
    between items and ``job_finish`` when it stops."""
    _CANCELLABLE[kind] = permission


def job_kinds() -> list[str]:
    """Every kind a job may have: the actions, then the other apps' registered kinds."""
    return [*ACTIONS, *sorted(k for k in _CANCELLABLE if k not in ACTIONS)]


def cancel_permission(kind: str) -> str | None:
    """The permission that stops a job of ``kind`` (an action's own), or None: it can't be."""
    action = ACTIONS.get(kind)
    return action.permission if action is not None else _CANCELLABLE.get(kind)


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
    job_activity_per_site(
        actor=actor,
        verb="job.create",
        job=job,
        sites=[m.site_id for m in miners],
        details=lambda count: {
            "kind": kind,
            "miners": count,
            "total": len(miners),
            "params": _masked(cleaned),
        },
    )
    transaction.on_commit(lambda: enqueue_job(job.pk))
    return job


def job_activity_per_site(
    *,
    actor: Actor,
    verb: str,
    job: Job,
    sites: Sequence[int],
    details: Callable[[int], dict[str, Any]],
) -> None:
    """One activity event per site the job touches (``sites``: each item's), scoped like that
    site: a user who can't see a site never reads the job's events there. ``details(count)``
    gets the number of the site's items."""
    for site_id, count in sorted(Counter(sites).items()):
        activity_record(
            actor=actor, verb=verb, org=job.org_id, site=site_id, target=job, details=details(count)
        )


def enqueue_job(job_id: int) -> None:
    """Celery in production; a background thread in embedded mode (eager tasks would hold the
    request for the whole staggered run)."""
    from fleet import tasks

    if settings.EMBEDDED:
        threading.Thread(target=job_execute, args=(job_id,), daemon=True).start()
    else:
        tasks.run_job.delay(job_id)


def _cancel_sites(job: Job) -> set[int | None]:
    """Where stopping the job stops work: its pending items' sites (all its sites when none
    is pending any more; the org as a whole, ``None``, for a job without items)."""
    return job.site_ids(pending_only=True) or job.site_ids() or {None}


def cancel_check(actor: Actor, job: Job) -> None:
    """Stopping a job needs the permission that runs it at every site of its remaining items:
    nobody stops work at a site where they couldn't do it. A kind that can't be stopped is a
    400 (no field: the request has none)."""
    permission = cancel_permission(job.kind)
    if permission is None:
        raise ApplicationError(f"A '{job.kind}' job can't be cancelled.")
    if actor.user is None or _everywhere(actor, permission, job.org_id):
        return
    for site_id in sorted(_cancel_sites(job), key=lambda s: (s is None, s or 0)):
        authorize(actor, permission, job.org_id, site_id)


def _everywhere(actor: Actor, permission: str, org_id: int) -> bool:
    """The permission at every site of the org (org-wide, and no site role there lacks it):
    no need to look at the job's sites."""
    grants = grants_for(actor.user)
    if grants.superuser:
        return True
    if not grants.allows(permission, org_id):
        return False
    return not any(grants.site_org.get(site) == org_id for site in grants.sites_without(permission))


def job_can_cancel(actor: Actor, job: Job) -> bool:
    """For pages: show the cancel control only when ``job_cancel`` would do it."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return False
    try:
        cancel_check(actor, job)
    except (ApplicationError, Forbidden):
        return False
    return True


@records_refusals("job.cancel")
@transaction.atomic
def job_cancel(*, actor: Actor, job: Job) -> Job:
    """Stops the job before its next batch (or device); miners already acted on stay acted on.
    Needs the job's permission at every site of its remaining items (``cancel_check``)."""
    job = Job.unscoped.select_for_update().get(pk=job.pk)
    cancel_check(actor, job)
    if job.status in (JobStatus.DONE, JobStatus.CANCELLED):
        return job
    sites = job.site_ids()
    Job.unscoped.filter(pk=job.pk).update(cancel_requested=True)
    if job.status == JobStatus.QUEUED:
        job_finish(job.pk, JobStatus.CANCELLED)
    for site_id in sorted(sites, key=lambda s: (s is None, s or 0)):
        activity_record(actor=actor, verb="job.cancel", org=job.org_id, site=site_id, target=job)
    job.refresh_from_db()
    return job


def job_cancelled(job_id: int) -> bool:
    """Has someone asked the job to stop? Executors look between batches (or devices)."""
    return Job.unscoped.filter(pk=job_id, cancel_requested=True).exists()


def job_start(job_id: int, kind: str | None = None) -> Job | None:
    """Queued → running, once: None when it isn't queued (already taken, or cancelled)."""
    queued = Job.unscoped.filter(pk=job_id, status=JobStatus.QUEUED)
    if kind is not None:
        queued = queued.filter(kind=kind)
    if not queued.update(status=JobStatus.RUNNING, started_at=timezone.now()):
        return None
    job = Job.unscoped.get(pk=job_id)
    _progress(job.pk)
    return job


def job_finish(job_id: int, status: str) -> None:
    """The end: pending items are cancelled, the status set and published."""
    JobItem.objects.filter(job_id=job_id, status=ItemStatus.PENDING).update(
        status=ItemStatus.CANCELLED
    )
    Job.unscoped.filter(pk=job_id).update(status=status, finished_at=timezone.now())
    _progress(job_id)


def job_groups(job: Job) -> set[str]:
    """The live groups a job's events go to: the groups of the sites it acts at (whoever may
    read miners at one of them); the org's group only for a job that has no site left."""
    sites = {site for site in job.site_ids() if site is not None}
    return {site_group(site) for site in sites} or {org_group(job.org_id)}


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
    groups = sorted(job_groups(job))

    def send() -> None:
        for group in groups:
            live.publish(group, JobMessage(type="job", job=progress))

    transaction.on_commit(send)


def _wait(job_id: int, seconds: float) -> bool:
    """Sleep between batches, looking for a cancel every ``CANCEL_POLL_S``: True when the job
    was cancelled (at once, or during the wait)."""
    deadline = time.monotonic() + seconds
    while True:
        if job_cancelled(job_id):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(CANCEL_POLL_S, left))


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
    """Run a queued job to the end (or its cancellation), batch by batch. A cancel is looked
    for before every batch, after the wait that precedes it too: a cancel during the wait
    stops the job before the next batch."""
    job = job_start(job_id)
    if job is None:
        return
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
        cancelled = _wait(job.pk, job.interval_s) if start else job_cancelled(job.pk)
        if cancelled:
            job_finish(job.pk, JobStatus.CANCELLED)
            return
        _run_batch(job, action, params, pending[start : start + size], actor)
    job_finish(job.pk, JobStatus.CANCELLED if job_cancelled(job.pk) else JobStatus.DONE)


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
