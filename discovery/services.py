"""Discovery runs: create (guardrails, scope), ingest what a scan found (identity,
attribution, idempotent counters), progress to the operator, finish.

Counting is idempotent by construction: a device counts toward a run the first time the run
touches its row (``device.run`` becomes the run, in the same transaction as the counters), so
an ingest retried after a rollback, or a batch a node sends twice, never counts twice.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from discovery import limits, targets
from discovery.models import DiscoveredDevice, DiscoveryRun, Outcome, RunStatus, Via
from discovery.protocol import DeviceRow, DiscoveryMessage, RunProgress
from fleet import live
from fleet.models import FleetNode, Miner, NodeStatus
from fleet.protocol import site_group
from fleet.services.identity import identifier_for
from miners import DeviceInfo
from miners.scan import Found, default_registry

NODE_ATTRIBUTED = "node_attributed"
OTHER_NODE = "attributed_to_another_node"
CLOUD_PAIRED = "cloud_paired"
CLOUD_RUN_MAX_S = 3600


@cache
def default_ports() -> tuple[int, ...]:
    """Every driver's discovery ports (ProtoOS 443/80/8080, CGMiner RPC 4028, …)."""
    return tuple(default_registry().ports())


def node_busy_message() -> str:
    return "The node is busy with another scan; retry shortly."


# --- create ---------------------------------------------------------------------------------
@records_refusals("discovery.run")
def run_create(
    *,
    actor: Actor,
    site: Site,
    target_list: Sequence[str],
    ports: Sequence[int] | None = None,
    node: FleetNode | None = None,
    scheduled: bool = False,
    resolver: targets.Resolver = targets.system_resolver,
) -> DiscoveryRun:
    """Check the targets (every refusal a 400 naming the target) and queue the scan."""
    authorize(actor, "discovery:run", site.org_id, site.pk)
    if node is not None:
        authorize(actor, "fleetnode:manage", node.org_id, node.site_id)
        if node.org_id != site.org_id:
            raise ApplicationError("The node belongs to another organization.", field="node")
        if node.status != NodeStatus.CONFIRMED:
            raise ApplicationError("Only a confirmed node can scan.", field="node")
    try:
        scope = targets.expand(
            list(target_list),
            list(ports) if ports else None,
            default_ports=default_ports(),
            allowed=settings.DISCOVERY_ALLOWED_NETWORKS,
            resolver=resolver,
            via_node=node is not None,
        )
    except targets.TargetRefused as exc:
        raise ApplicationError(str(exc), field=exc.field) from exc
    total = scope.total + (limits.MAX_ADDRESSES * len(scope.ports) if scope.node_local else 0)
    with transaction.atomic():
        run = DiscoveryRun.unscoped.create(
            org_id=site.org_id,
            site=site,
            requested_by=actor.user,
            actor_label=actor.label[:200],
            via=Via.NODE if node is not None else Via.CLOUD,
            node=node,
            targets=[t.strip() for t in target_list],
            addresses=list(scope.addresses),
            ports=list(scope.ports),
            expanded_count=len(scope.addresses),
            total=total,
            scheduled=scheduled,
        )
        activity_record(
            actor=actor,
            verb="discovery.run",
            org=site.org_id,
            site=site,
            target=run,
            details={
                "targets": run.targets[:20],
                "addresses": run.expanded_count,
                "ports": run.ports,
                "node": node.pk if node is not None else None,
            },
        )
        transaction.on_commit(lambda: run_enqueue(run.pk))
    return run


def run_enqueue(run_id: int) -> None:
    """Celery in production; a background thread in the embedded mode (an eager task would
    hold the request for the whole scan)."""
    from discovery import tasks

    if settings.EMBEDDED:
        threading.Thread(target=run_execute, args=(run_id,), daemon=True).start()
    else:
        tasks.run_discovery.delay(run_id)


def run_execute(run_id: int) -> None:
    from discovery import cloud, node

    run = DiscoveryRun.unscoped.filter(pk=run_id).first()
    if run is None or run.status == RunStatus.DONE:
        return
    if run.via == Via.NODE:
        node.run_via_node(run)
    else:
        cloud.run_in_cloud(run)


# --- progress and finish --------------------------------------------------------------------
def run_start(run: DiscoveryRun, *, deadline_s: float, command_id: str | None = None) -> bool:
    """queued → running (a retried task finds it running and carries on)."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": RunStatus.RUNNING,
        "started_at": now,
        "deadline_at": now + dt.timedelta(seconds=deadline_s),
    }
    if command_id is not None:
        fields["command_id"] = command_id
    started = DiscoveryRun.unscoped.filter(pk=run.pk, status=RunStatus.QUEUED).update(**fields)
    run.refresh_from_db()
    publish(run)
    return bool(started) or run.status == RunStatus.RUNNING


def run_progress(run_id: int, probed: int) -> None:
    DiscoveryRun.unscoped.filter(pk=run_id, status=RunStatus.RUNNING, probed__lt=probed).update(
        probed=probed
    )


def run_finish(run_id: int, outcome: str, *, error: str = "") -> DiscoveryRun | None:
    """The first final outcome wins (a late ack after a timeout changes nothing)."""
    with transaction.atomic():
        updated = DiscoveryRun.unscoped.filter(pk=run_id).exclude(status=RunStatus.DONE)
        fields: dict[str, Any] = {
            "status": RunStatus.DONE,
            "outcome": outcome,
            "error": error[: limits.ERROR_CHARS],
            "finished_at": timezone.now(),
        }
        if outcome in (Outcome.OK,):
            fields["probed"] = F("total")
        done = updated.update(**fields)
        run = DiscoveryRun.unscoped.filter(pk=run_id).first()
    if run is not None and done:
        publish(run)
    return run


def runs_sweep(*, now: dt.datetime | None = None) -> int:
    """Runs past their deadline: a node run whose command ended takes its outcome, the rest
    time out (no operator waits forever for a node that went away)."""
    from fleet.models import NodeCommand
    from fleet.models.nodes import FINAL_COMMAND_STATUSES

    now = now or timezone.now()
    count = 0
    open_runs = DiscoveryRun.unscoped.filter(status=RunStatus.RUNNING)
    for run in open_runs:
        command = (
            NodeCommand.unscoped.filter(command_id=run.command_id).first()
            if run.command_id
            else None
        )
        if command is not None and command.status in FINAL_COMMAND_STATUSES:
            run_finish(run.pk, outcome_of(command.status), error=command.error)
            count += 1
        elif run.deadline_at is not None and run.deadline_at < now:
            run_finish(run.pk, Outcome.TIMEOUT, error="The scan did not finish in time.")
            count += 1
    return count


def outcome_of(status: str) -> str:
    return {
        "ok": Outcome.OK,
        "partial": Outcome.PARTIAL,
        "busy": Outcome.BUSY,
        "rejected": Outcome.REJECTED,
        "timeout": Outcome.TIMEOUT,
    }.get(status, Outcome.FAILED)


def progress_of(run: DiscoveryRun) -> RunProgress:
    return RunProgress(
        id=run.pk,
        status=run.status,
        outcome=run.outcome,
        probed=min(run.probed, run.total),
        total=run.total,
        found=run.found,
        new=run.new,
        updated=run.updated,
        rejected=dict(run.rejected),
        error=run.error,
    )


def device_row(device: DiscoveredDevice) -> DeviceRow:
    return DeviceRow(
        id=device.pk,
        identifier=device.identifier,
        host=device.host,
        port=device.port,
        driver=device.driver,
        make=device.make,
        model=device.model,
        firmware=device.firmware,
        serial=device.serial,
        mac=device.mac,
        node=device.node_id,
        miner=device.miner_id,
        pair_outcome=device.pair_outcome,
        pair_error=device.pair_error,
    )


def publish(run: DiscoveryRun, devices: Iterable[DiscoveredDevice] = ()) -> None:
    message = DiscoveryMessage(
        type="discovery", run=progress_of(run), devices=[device_row(d) for d in devices]
    )
    transaction.on_commit(lambda: live.publish(site_group(run.site_id), message))


# --- ingest ---------------------------------------------------------------------------------
@dataclass
class Ingested:
    devices: list[DiscoveredDevice] = field(default_factory=list)
    found: int = 0
    new: int = 0
    updated: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def devices_ingest(
    run: DiscoveryRun,
    found: Sequence[Found],
    *,
    node: FleetNode | None,
    rejected: Counter[str] | None = None,
    probed: int | None = None,
) -> Ingested:
    """Store what a scan found, in one transaction with the run's counters: the devices the
    batch can match are read (and locked) in three queries, the batch is applied in order in
    memory (a device answering on two ports in one batch is one row, as two batches make it),
    then one INSERT of the new rows and one UPDATE of the rest."""
    result = Ingested(rejected=Counter(rejected or {}))
    now = timezone.now()
    dialled_by = node.managed_by if node is not None else "cloud"
    with transaction.atomic():
        locked = DiscoveryRun.unscoped.select_for_update().get(pk=run.pk)
        batch = _Batch(locked, found, node, dialled_by, now)
        for item, identifier in zip(found, batch.identifiers, strict=True):
            reason = batch.apply(item, identifier, result)
            if reason:
                result.rejected[reason] += 1
        batch.save()
        for device, item in batch.moved:
            _follow_address(device.miner, item)  # type: ignore[arg-type]
        counts = Counter(locked.rejected)
        counts.update(result.rejected)
        fields: dict[str, Any] = {
            "found": F("found") + result.found,
            "new": F("new") + result.new,
            "updated": F("updated") + result.updated,
            "rejected": dict(counts),
        }
        if probed is not None:
            fields["probed"] = max(locked.probed, min(probed, locked.total))
        DiscoveryRun.unscoped.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
        publish(run, result.devices)
    return result


_SAVED = ("identifier", "host", "node", "site", "last_seen", "run", "port", "scheme", "driver",
          "make", "model", "firmware", "mac", "serial", "miner")  # fmt: skip


class _Batch:
    """One batch's devices: the stored ones it can match (locked), the miners their
    identifiers name, and what the batch creates and changes."""

    def __init__(
        self,
        run: DiscoveryRun,
        found: Sequence[Found],
        node: FleetNode | None,
        dialled_by: str,
        now: dt.datetime,
    ) -> None:
        self.run, self.node, self.now = run, node, now
        self.identifiers = [_identifier(item, dialled_by) for item in found]
        rows = DiscoveredDevice.unscoped.select_for_update(of=("self",)).select_related(
            "node", "miner"
        )
        hosts = {item.host for item in found}
        stored: dict[int, DiscoveredDevice] = {}  # one instance per row, however it matched
        for device in rows.filter(org_id=run.org_id, identifier__in=set(self.identifiers)):
            stored[device.pk] = device
        for device in rows.filter(org_id=run.org_id, host__in=hosts, node=node):
            stored.setdefault(device.pk, device)
        self.by_identifier = {d.identifier: d for d in stored.values()}
        node_id = node.pk if node is not None else None
        # (host, driver) → this node's devices there; kept up to date as the batch changes them
        self.same_address: dict[tuple[str, str], list[DiscoveredDevice]] = {}
        self.placed: dict[int, tuple[str, str]] = {}  # id(device) → its key above
        for device in stored.values():
            if device.host in hosts and device.node_id == node_id:
                self._place(device)
        self.listed: set[int] = set()  # id() of the devices already in result.devices
        wanted = set(self.identifiers) | set(self.by_identifier)
        self.miners = {
            m.identifier: m for m in Miner.unscoped.filter(org_id=run.org_id, identifier__in=wanted)
        }
        self.created: list[DiscoveredDevice] = []
        self.changed: dict[int, DiscoveredDevice] = {}
        self.moved: list[tuple[DiscoveredDevice, Found]] = []

    def _place(self, device: DiscoveredDevice) -> None:
        key = (device.host, device.driver)
        old = self.placed.get(id(device))
        if old == key:
            return
        if old is not None:
            self.same_address[old].remove(device)
        self.same_address.setdefault(key, []).append(device)
        self.placed[id(device)] = key

    def _at_address(self, item: Found, weak: bool) -> DiscoveredDevice | None:
        """One device answering on two ports, one of them without its MAC (CGMiner RPC): the
        same row, under the strongest identity either port gave."""
        candidates = [
            d
            for d in self.same_address.get((item.host, item.driver), ())
            if weak or (d.identifier.startswith("auto:") and d.miner_id is None)
        ]
        return min(candidates, key=lambda d: d.identifier, default=None)

    def apply(self, item: Found, identifier: str, result: Ingested) -> str:
        weak = identifier.startswith("auto:")
        device = self.by_identifier.get(identifier)
        if device is None:
            device = self._at_address(item, weak)
            if device is not None and not weak:
                self.by_identifier.pop(device.identifier, None)
                device.identifier = identifier
                self.by_identifier[identifier] = device
        if device is not None:
            refusal = _attribution_refused(device, self.node)
            if refusal:
                return refusal
        values: dict[str, Any] = {
            "host": item.host,
            "node": self.node,
            "site_id": self.run.site_id,
            "last_seen": self.now,
            "run": self.run,
        }
        if device is None or not weak or device.identifier.startswith("auto:"):
            values["port"] = item.port
            values["scheme"] = item.scheme
        for name in ("driver", "make", "model", "firmware", "mac", "serial"):
            if getattr(item, name) or device is None:
                values[name] = getattr(item, name)
        if device is None:
            device = DiscoveredDevice(
                org_id=self.run.org_id,
                identifier=identifier,
                first_seen=self.now,
                miner=self.miners.get(identifier),
                **values,
            )
            self.created.append(device)
            self.by_identifier[identifier] = device
            result.found += 1
            result.new += 1
        else:
            counted = device.run_id == self.run.pk
            for name, value in values.items():
                setattr(device, name, value)
            if device.miner is None:
                device.miner = self.miners.get(device.identifier)
            if device.pk is not None:
                self.changed[device.pk] = device
            if not counted:
                result.found += 1
                result.updated += 1
        self._place(device)  # this node's now, at this address
        if id(device) not in self.listed:
            self.listed.add(id(device))
            result.devices.append(device)
        if device.miner is not None:
            self.moved.append((device, item))
        return ""

    def save(self) -> None:
        if self.created:
            DiscoveredDevice.unscoped.bulk_create(self.created)
        if self.changed:
            DiscoveredDevice.unscoped.bulk_update(list(self.changed.values()), list(_SAVED))


def _identifier(item: Found, dialled_by: str) -> str:
    info = DeviceInfo(
        driver=item.driver,
        host=item.host,
        port=item.port,
        make=item.make,
        model=item.model,
        serial=item.serial or None,
        mac=item.mac or None,
    )
    return identifier_for(info, dialled_by=dialled_by)


def _attribution_refused(device: DiscoveredDevice, node: FleetNode | None) -> str:
    """A node's device stays its node's until that node is revoked; a cloud-paired device is
    never a node's, and the cloud never takes a node's device."""
    owner = device.node
    owner_live = owner is not None and owner.status != NodeStatus.REVOKED
    if node is None:
        return NODE_ATTRIBUTED if owner_live else ""
    if owner_live and owner is not None and owner.pk != node.pk:
        return OTHER_NODE
    if device.miner is not None and device.miner.managed_by == "cloud":
        return CLOUD_PAIRED
    return ""


def _follow_address(miner: Miner, item: Found) -> None:
    """A paired miner answered at a new address (DHCP): the miner row follows it."""
    if (miner.host, miner.port) == (item.host, item.port):
        return
    taken = (
        Miner.unscoped.filter(org_id=miner.org_id, host=item.host, port=item.port)
        .exclude(pk=miner.pk)
        .exists()
    )
    if not taken:
        Miner.unscoped.filter(pk=miner.pk).update(
            host=item.host, port=item.port, updated_at=timezone.now()
        )


def found_checked(
    run: DiscoveryRun, raw: Iterable[Any], *, drivers: Sequence[str], quota_used: int
) -> tuple[list[Found], Counter[str]]:
    """Reported devices → the ones to ingest, and the dropped ones counted by reason."""
    from discovery.reports import OVER_QUOTA, Dropped, found_from_report

    hosts, ports = set(run.addresses), set(run.ports)
    node_local = "node-local-subnet" in [t.lower() for t in run.targets]
    # one report per address and port at most: a rig answering on 80 and 443 is two reports
    addresses = limits.MAX_ADDRESSES if node_local else run.expanded_count
    quota = max(1, addresses * max(1, len(ports)))
    accepted: list[Found] = []
    dropped: Counter[str] = Counter()
    for data in raw:
        try:
            item = found_from_report(
                data,
                drivers=drivers,
                hosts=hosts,
                ports=ports,
                node_local=node_local,
                allowed=settings.DISCOVERY_ALLOWED_NETWORKS,
            )
        except Dropped as exc:
            dropped[exc.reason] += 1
            continue
        if quota_used + len(accepted) >= quota:
            dropped[OVER_QUOTA] += 1
            continue
        accepted.append(item)
    return accepted, dropped
