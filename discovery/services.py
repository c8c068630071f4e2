"""Discovery runs: create (guardrails, scope), ingest what a scan found (identity,
attribution, idempotent counters), progress to the operator, finish.

Counting is idempotent by construction: a device counts toward a run the first time the run
touches its row (``device.run`` becomes the run, in the same transaction as the counters), so
an ingest retried after a rollback, or a batch a node sends twice, never counts twice.
"""

from __future__ import annotations

import dataclasses
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
from fleet.services.miners import miner_follow, rig_ports
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
        if done:
            run_follow(run_id)
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


def device_row(device: DiscoveredDevice, *, miner_shown: bool = True) -> DeviceRow:
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
        miner=device.miner_id if miner_shown else None,
        paired=device.miner_id is not None,
        pair_outcome=device.pair_outcome,
        pair_error=device.pair_error,
    )


def publish(run: DiscoveryRun, devices: Iterable[DiscoveredDevice] = ()) -> None:
    """To the run's site group: everyone in it reads the miners of that site, so a device's
    miner at another site (one identity per org: a rig that moved) goes out as null."""
    devices = list(devices)
    linked = {d.miner_id for d in devices if d.miner_id is not None}
    here = (
        set(Miner.unscoped.filter(pk__in=linked, site_id=run.site_id).values_list("pk", flat=True))
        if linked
        else set()
    )
    rows = [device_row(d, miner_shown=d.miner_id in here) for d in devices]
    message = DiscoveryMessage(type="discovery", run=progress_of(run), devices=rows)
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
    """Store what a scan found, in one transaction with the run's counters: the miners at the
    batch's addresses and the devices the batch can match are read (devices locked) in four
    queries, the batch is applied in order in memory (a device answering on two ports in one
    batch is one row, as two batches make it), then one INSERT of the new rows and one UPDATE
    of the rest; a paired miner that moved (DHCP) is followed."""
    result = Ingested(rejected=Counter(rejected or {}))
    now = timezone.now()
    dialled_by = node.managed_by if node is not None else "cloud"
    with transaction.atomic():
        locked = DiscoveryRun.unscoped.select_for_update().get(pk=run.pk)
        batch = _Batch(locked, found, node, dialled_by, now)
        for item, identifier in batch.items:
            reason = batch.apply(item, identifier, result)
            if reason:
                result.rejected[reason] += 1
        batch.save()
        batch.follow()
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


PAIRED_OUTCOMES = ("paired", "default_password")  # pairing.PAIRED, pairing.DEFAULT_PASSWORD
_SAVED = ("identifier", "host", "node", "site", "last_seen", "run", "port", "scheme", "driver",
          "make", "model", "firmware", "mac", "serial", "miner", "pair_outcome",
          "pair_error")  # fmt: skip
_SCHEME_RANK = {"https": 1, "http": 2, "": 3}  # then "tcp": an RPC port (Antminer 4028)


def endpoint_rank(host: str, port: int, scheme: str, miner: Miner | None) -> int:
    """Which of a device's ports its row shows, lowest first: its miner's own endpoint, then
    a web API (https before http), an unknown scheme, an RPC port last."""
    if miner is not None and (miner.host, miner.port) == (host, port):
        return 0
    return _SCHEME_RANK.get(scheme, len(_SCHEME_RANK) + 1)


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
        hosts = {item.host for item in found}
        node_id = node.pk if node is not None else None
        # this dialler's miners at the batch's addresses: a report without MAC or serial (a
        # stock Antminer before its web login) at one of a miner's ports is that miner
        dialler: dict[str, Any] = {"node_id": node_id} if node else {"managed_by": "cloud"}
        at_hosts = list(Miner.unscoped.filter(org_id=run.org_id, host__in=hosts, **dialler))
        self.items = [_recognised(item, _identifier(item, dialled_by), at_hosts) for item in found]
        identifiers = {identifier for _item, identifier in self.items}
        rows = DiscoveredDevice.unscoped.select_for_update(of=("self",)).select_related(
            "node", "miner"
        )
        stored: dict[int, DiscoveredDevice] = {}  # one instance per row, however it matched
        for device in rows.filter(org_id=run.org_id, identifier__in=identifiers):
            stored[device.pk] = device
        for device in rows.filter(org_id=run.org_id, host__in=hosts, node=node):
            stored.setdefault(device.pk, device)
        self.by_identifier = {d.identifier: d for d in stored.values()}
        # (host, driver) → this dialler's devices there; kept up to date as the batch changes them
        self.same_address: dict[tuple[str, str], list[DiscoveredDevice]] = {}
        self.placed: dict[int, tuple[str, str]] = {}  # id(device) → its key above
        for device in stored.values():
            if device.host in hosts and device.node_id == node_id:
                self._place(device)
        self.listed: set[int] = set()  # id() of the devices already in result.devices
        wanted = identifiers | set(self.by_identifier)
        self.miners = {
            m.identifier: m for m in Miner.unscoped.filter(org_id=run.org_id, identifier__in=wanted)
        }
        self.created: list[DiscoveredDevice] = []
        self.changed: dict[int, DiscoveredDevice] = {}
        self.reports: dict[int, tuple[DiscoveredDevice, list[Found]]] = {}

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

    def _endpoint_taken(
        self, device: DiscoveredDevice | None, item: Found, weak: bool, miner: Miner | None
    ) -> bool:
        """Whether the row shows this report's port and scheme: a stable choice, not the port
        probed last. A run's first report of the device, or one at another host, sets it;
        within the run a report replaces it only when it ranks better (``endpoint_rank``); a
        port without the MAC never replaces one with it."""
        if device is None:
            return True
        if weak and not device.identifier.startswith("auto:"):
            return False
        if device.run_id != self.run.pk or device.host != item.host:
            return True
        rank = endpoint_rank(item.host, item.port, item.scheme, miner)
        return rank < endpoint_rank(device.host, device.port, device.scheme, miner)

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
        miner = self.miners.get(identifier if device is None else device.identifier)
        if device is not None and device.miner is not None:
            miner = device.miner
        values: dict[str, Any] = {
            "host": item.host,
            "node": self.node,
            "site_id": self.run.site_id,
            "last_seen": self.now,
            "run": self.run,
        }
        if self._endpoint_taken(device, item, weak, miner):
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
                miner=miner,
                **values,
            )
            self.created.append(device)
            self.by_identifier[identifier] = device
            result.found += 1
            if miner is None:
                result.new += 1
            else:  # a new row, but the fleet knows it: seen before, not new
                result.updated += 1
        else:
            counted = device.run_id == self.run.pk
            for name, value in values.items():
                setattr(device, name, value)
            if device.miner is None:
                device.miner = miner
            if device.miner is None and device.pair_outcome in PAIRED_OUTCOMES:
                device.pair_outcome = device.pair_error = ""  # its miner was deleted since
            if device.pk is not None:
                self.changed[device.pk] = device
            if not counted:
                result.found += 1
                result.updated += 1
        self._place(device)  # this dialler's now, at this address
        if id(device) not in self.listed:
            self.listed.add(id(device))
            result.devices.append(device)
        if device.miner is not None:
            self.reports.setdefault(device.miner.pk, (device, []))[1].append(item)
        return ""

    def save(self) -> None:
        if self.created:
            DiscoveredDevice.unscoped.bulk_create(self.created)
        if self.changed:
            DiscoveredDevice.unscoped.bulk_update(list(self.changed.values()), list(_SAVED))

    def follow(self) -> None:
        """Paired miners answering at another host (DHCP) follow it on a port of the scheme
        they are dialled with; the same host answering on another port changes nothing
        (``fleet.services.miners.miner_follow``). A rig that now only speaks another scheme
        is followed when the run ends (``run_follow``), from the port its row settled on."""
        for device, items in self.reports.values():
            miner = device.miner
            if miner is None or device.host == miner.host:
                continue  # no query for the usual case: the miner is where it was
            reports = [(i.host, i.port, i.scheme) for i in items if i.host == device.host]
            miner_follow(miner, reports, same_scheme=True)


def run_follow(run_id: int) -> int:
    """After a run: its devices whose miner is still at another host (only another scheme
    answered at the new one) move their miner to the endpoint the row settled on, one
    report's port and scheme. One query when there are none (the usual case)."""
    moved = 0
    left = (
        DiscoveredDevice.unscoped.filter(run_id=run_id, miner__isnull=False)
        .exclude(miner__host=F("host"))
        .select_related("miner")
    )
    for device in left:
        if device.miner is not None:
            moved += miner_follow(device.miner, [(device.host, device.port, device.scheme)])
    return moved


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


def _recognised(item: Found, identifier: str, miners: Sequence[Miner]) -> tuple[Found, str]:
    """A report with a weak (``auto:``) identity at one of a miner's ports (same host and
    driver: the rig's own port or a companion its driver named) is that miner: its identity,
    and the MAC and serial the miner is known by where the report has none."""
    if not identifier.startswith("auto:"):
        return item, identifier
    for miner in miners:
        if (miner.host, miner.driver) == (item.host, item.driver) and item.port in rig_ports(miner):
            known = dataclasses.replace(
                item, mac=item.mac or miner.mac, serial=item.serial or miner.serial[:100]
            )
            return known, miner.identifier
    return item, identifier


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
