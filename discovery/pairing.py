"""Pairing found devices: a bulk job (``/jobs/<id>/``) with a per-device outcome — paired,
default password, auth needed, failed. Each outcome is also stored on the device
(``pair_outcome``/``pair_error``) and published live to the run it was paired from, so the
discovery page's devices table shows it; the job page and ``/api/v1/jobs/{id}/`` list every
device's result, those that failed (no miner) by the device's site. The job's ``params.run``
links the job back to that run.

Each device is paired under a row lock on its ``DiscoveredDevice``, so two attempts at once
(the cloud and a node, or two operators) can't both win: the second finds it paired. A device
whose miner already exists (same identity, new address) updates that miner instead of adding
a second one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError, Forbidden
from accounts.models import Organization
from accounts.services.activity import records_refusals
from discovery import limits, services
from discovery.models import DiscoveredDevice, DiscoveryRun
from fleet import crypto
from fleet.models import (
    FleetNode,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    Miner,
    MinerHealth,
    NodeStatus,
)
from fleet.nodes.ownership import UNASSIGNED, miner_pair_via_node, miner_reclaim_via_node
from fleet.services.credentials import credentials_store
from fleet.services.jobs import job_activity_per_site, job_cancelled, job_finish, job_start
from fleet.services.miners import miner_add, miner_at_address, miner_follow

JOB_KIND = "discovery_pair"
MAX_DEVICES = 4096
PAIRED = "paired"
DEFAULT_PASSWORD = "default_password"
AUTH_NEEDED = "auth_needed"
FAILED = "failed"


@records_refusals("discovery.pair")
@transaction.atomic
def pairing_create(
    *,
    actor: Actor,
    org: Organization,
    devices: Sequence[DiscoveredDevice],
    node: FleetNode | None = None,
    username: str = "",
    password: str | None = None,
    run: DiscoveryRun | None = None,
) -> Job:
    """Queue the pairing of ``devices`` (to ``node``, else the cloud); ``run`` is the run the
    operator paired them from (its page shows the outcomes live)."""
    if not devices:
        raise ApplicationError("No devices selected.", field="devices")
    if len(devices) > MAX_DEVICES:
        raise ApplicationError(f"At most {MAX_DEVICES} devices at once.", field="devices")
    for device in devices:
        if device.org_id != org.pk:
            raise ApplicationError("Those devices belong to another organization.", field="devices")
        authorize_on(actor, "miner:pair", device)
    if node is not None:
        if node.org_id != org.pk:
            raise ApplicationError("The node belongs to another organization.", field="node")
        authorize(actor, "fleetnode:manage", node.org_id, node.site_id)
    if run is not None and run.org_id != org.pk:
        raise ApplicationError("The run belongs to another organization.", field="run")
    job = Job.unscoped.create(
        org=org,
        kind=JOB_KIND,
        params={
            "devices": [d.pk for d in devices],
            "node": node.pk if node else None,
            "run": run.pk if run else None,
        },
        created_by=actor.user,
        actor_label=actor.label[:200],
        total=len(devices),
        batch_size=len(devices),
        interval_s=0,
    )
    secret = {"username": username, "password": password}
    job.sealed_params = crypto.encrypt(json.dumps(secret), org_id=org.pk, label=job.secret_label)
    job.save(update_fields=["sealed_params"])
    JobItem.objects.bulk_create(
        JobItem(
            job=job,
            miner=d.miner,
            site_id=d.site_id,
            miner_name=f"{d.driver} {d.host}:{d.port}"[:120],
        )
        for d in devices
    )
    job_activity_per_site(
        actor=actor,
        verb="discovery.pair",
        job=job,
        sites=[d.site_id for d in devices],
        details=lambda count: {
            "devices": count,
            "total": len(devices),
            "node": node.pk if node else None,
        },
    )
    transaction.on_commit(lambda: pairing_enqueue(job.pk))
    return job


def pairing_enqueue(job_id: int) -> None:
    from discovery import tasks

    if settings.EMBEDDED:
        threading.Thread(target=pairing_execute, args=(job_id,), daemon=True).start()
    else:
        tasks.pair_devices.delay(job_id)


def pairing_execute(job_id: int) -> None:
    """Pair the job's devices one by one; a cancel (``POST /api/v1/jobs/{id}/cancel``) stops
    it before the next device, the remaining ones ``cancelled``."""
    job = job_start(job_id, JOB_KIND)
    if job is None:
        return
    secret = json.loads(
        crypto.decrypt(job.sealed_params or b"", org_id=job.org_id, label=job.secret_label)
    )
    actor = Actor.for_user(job.created_by) if job.created_by else Actor.system(job.actor_label)
    node = FleetNode.unscoped.filter(pk=job.params.get("node")).first()
    run_id = job.params.get("run")
    run = DiscoveryRun.unscoped.filter(pk=run_id, org_id=job.org_id).first() if run_id else None
    items = list(JobItem.objects.filter(job=job).order_by("id"))
    for device_id, item in zip(job.params["devices"], items, strict=False):
        if job_cancelled(job.pk):
            job_finish(job.pk, JobStatus.CANCELLED)
            return
        outcome, message, miner = device_pair(
            actor=actor,
            device_id=device_id,
            node=node,
            username=secret["username"],
            password=secret["password"],
            run=run,
        )
        ok = outcome in (PAIRED, DEFAULT_PASSWORD)
        JobItem.objects.filter(pk=item.pk).update(
            status=ItemStatus.OK if ok else ItemStatus.FAILED,
            miner=miner,
            error=message[:500],
            finished_at=timezone.now(),
        )
        Job.unscoped.filter(pk=job.pk).update(
            **({"done": F("done") + 1} if ok else {"failed": F("failed") + 1})
        )
    job_finish(job.pk, JobStatus.CANCELLED if job_cancelled(job.pk) else JobStatus.DONE)


def device_pair(
    *,
    actor: Actor,
    device_id: int,
    node: FleetNode | None,
    username: str = "",
    password: str | None = None,
    run: DiscoveryRun | None = None,
) -> tuple[str, str, Miner | None]:
    """(outcome, message, miner) for one device; the device row is locked throughout. The
    outcome is stored on the device and, with ``run``, published to that run's page."""
    with transaction.atomic():
        device = (
            DiscoveredDevice.unscoped.select_for_update(of=("self",))
            .select_related("node", "miner", "site")
            .filter(pk=device_id)
            .first()
        )
        if device is None:
            return FAILED, "The device is no longer known.", None
        outcome, message, miner = _pair_locked(actor, device, node, username, password)
        device.pair_outcome = outcome
        device.pair_error = message[: limits.ERROR_CHARS]
        if miner is not None:
            device.miner = miner
        device.save(update_fields=["pair_outcome", "pair_error", "miner"])
        if run is not None:
            services.publish(run, [device])  # on commit
        return outcome, message, miner


def _pair_locked(
    actor: Actor,
    device: DiscoveredDevice,
    node: FleetNode | None,
    username: str,
    password: str | None,
) -> tuple[str, str, Miner | None]:
    if device.miner is not None:
        return FAILED, f"Already paired as '{device.miner.name}'.", None
    owner = device.node if device.node and device.node.status != NodeStatus.REVOKED else None
    existing = Miner.unscoped.filter(org_id=device.org_id, identifier=device.identifier).first()
    if existing is None and device.identifier.startswith("auto:"):
        # no MAC or serial to know it by (a stock Antminer before its web login): the miner
        # of this dialler at the rig's address is this device, never a second miner
        existing = miner_at_address(
            device.org_id,
            device.host,
            device.port,
            device.driver,
            node_id=node.pk if node is not None else None,
        )
    if node is None and owner is not None:
        return FAILED, f"Found by fleet node '{owner.name}': pair it through that node.", None
    if node is not None and (owner is None or owner.pk != node.pk):
        where = f"fleet node '{owner.name}'" if owner else "the server"
        return FAILED, f"Found by {where}, not by '{node.name}': pair it to what found it.", None
    if existing is not None and node is not None and existing.managed_by == UNASSIGNED:
        try:  # released by a revoked node: the node that found it again owns it now
            miner = miner_reclaim_via_node(
                actor=actor,
                node=node,
                miner=existing,
                host=device.host,
                port=device.port,
                username=username,
                password=password,
            )
        except (ApplicationError, Forbidden) as exc:
            return FAILED, exc.message, None
        return PAIRED, f"'{miner.name}' is back in the fleet through '{node.name}'.", miner
    if existing is not None:
        if node is not None and existing.node_id not in (None, node.pk):
            return FAILED, f"'{existing.name}' is paired to another fleet node.", None
        if (existing.managed_by == "cloud") != (node is None):
            side = "the cloud" if existing.managed_by == "cloud" else "a fleet node"
            return FAILED, f"'{existing.name}' is paired to {side}; unpair it first.", None
        if password is not None:
            credentials_store(existing, username=username, password=password)
        if device.host == existing.host:  # another port of the same rig: nothing moved
            return PAIRED, f"Already in the fleet as '{existing.name}'.", existing
        if miner_follow(existing, [(device.host, device.port, device.scheme)]):
            return PAIRED, f"Already in the fleet as '{existing.name}': address updated.", existing
        return (
            PAIRED,
            f"Already in the fleet as '{existing.name}'; its address was kept (found at "
            f"{device.host}:{device.port} only, which is not the kind of port it is dialled on).",
            existing,
        )
    try:
        if node is None:
            miner = miner_add(
                actor=actor,
                site=device.site,
                host=device.host,
                port=device.port,
                driver=device.driver,
                username=username,
                password=password,
            )
        else:
            miner = miner_pair_via_node(
                actor=actor,
                node=node,
                site=device.site,
                host=device.host,
                port=device.port,
                driver=device.driver,
                username=username,
                password=password,
                name=f"{device.model or device.driver} {device.host}",
            )
    except ApplicationError as exc:
        if "password" in exc.errors:
            return AUTH_NEEDED, exc.message, None
        return FAILED, exc.message, None
    except Forbidden as exc:
        return FAILED, exc.message, None
    if miner.health == MinerHealth.DEFAULT_PASSWORD:
        return DEFAULT_PASSWORD, "Paired; it still uses the factory password.", miner
    return PAIRED, "Paired.", miner
