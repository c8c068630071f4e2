"""``/discovery/``: start a run (targets, ports, site, via a node), watch it live (progress,
devices streaming in, rejections by reason, outcome), select and pair; the run history.
Thin: every write is a service call, every read goes through ``restrict``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import ApplicationError, Refusal
from accounts.models import Organization, Site
from accounts.views.base import PageRequest, scoped_get
from discovery import pairing, schedule, services
from discovery.models import DiscoveredDevice, DiscoveryRun, SavedRange
from discovery.selectors import with_visible_miner
from fleet.models import FleetNode, Job, NodeStatus
from fleet.views.base import fleet_page

RUNS_PER_PAGE = 20
DEVICES_SHOWN = 500
_SPLIT = re.compile(r"[\s,;]+")
_ID = re.compile(r"[0-9]{1,18}")


def _id(value: Any) -> int | None:
    """An id from a form field: ASCII digits in the 64-bit range, else None."""
    text = str(value or "")
    return int(text) if _ID.fullmatch(text) else None


def _runs(request: PageRequest, org: Organization) -> Any:
    return (
        DiscoveryRun.objects.restrict(request.user, "discovery:run")
        .filter(org=org)
        .select_related("site", "node")
    )


@fleet_page("discovery:run")
@require_GET
def discovery_page(request: PageRequest, org: Organization) -> HttpResponse:
    runs = _runs(request, org)
    status = 200
    asked = request.GET.get("run")
    if asked is None or asked == "":
        current = runs.first()
    else:
        chosen = _id(asked)
        current = runs.filter(pk=chosen).first() if chosen is not None else None
        if current is None:  # another org's run (or one out of the caller's sites) = missing
            status = 404 if chosen is not None else 400
            messages.error(
                request,
                f"There is no run {chosen} here: it doesn't exist, or it belongs to a site or an "
                "organization you can't see."
                if chosen is not None
                else f"'{asked[:40]}' is not a run number.",
            )
    devices = _devices(request, current) if current is not None else []
    context = {
        "org": org,
        "current": current,
        "moved_on": _moved_on(request, runs, current),
        "progress": services.progress_of(current) if current is not None else None,
        "devices": devices,
        "page": Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page")),
        "sites": Site.objects.restrict(request.user, "discovery:run").filter(org=org),
        "nodes": FleetNode.objects.restrict(request.user, "fleetnode:manage").filter(
            org=org, status=NodeStatus.CONFIRMED
        ),
        "can_pair": has_perm(request.user, "miner:pair", org.pk),
        "pair_jobs": (
            Job.objects.restrict(request.user, "miner:read")
            .filter(org=org, kind=pairing.JOB_KIND, params__run=current.pk)
            .order_by("-created_at")[:10]
            if current is not None
            else []
        ),
        "schedules": SavedRange.objects.restrict(request.user, "discovery:run")
        .filter(org=org)
        .select_related("site", "node")[:100],
    }
    return render(request, "discovery/index.html", context, status=status)


def address_key(host: str, port: int) -> tuple[int, int, int]:
    """Addresses in numeric order (127.0.0.2 before 127.0.0.10; IPv4 before IPv6), whatever
    the database compares them as (SQLite: text)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (9, 0, port)
    return (ip.version, int(ip), port)


def _devices(request: PageRequest, run: DiscoveryRun) -> list[DiscoveredDevice]:
    """The run's devices shown (at most ``DEVICES_SHOWN``), by address in numeric order: the
    addresses of all are sorted here, then only the rows shown are read."""
    visible = DiscoveredDevice.objects.restrict(request.user, "discovery:run").filter(run=run)
    addresses = sorted(
        visible.values_list("host", "port", "pk"), key=lambda r: (*address_key(r[0], r[1]), r[2])
    )
    shown = [pk for _host, _port, pk in addresses[:DEVICES_SHOWN]]
    page = with_visible_miner(visible.filter(pk__in=shown), request.user)
    # the miner's name is shown only where ``visible_miner_id`` says the caller may read it
    rows = {d.pk: d for d in page.select_related("node", "miner")}
    return [rows[pk] for pk in shown if pk in rows]


def _scan_form(request: PageRequest, org: Organization) -> dict[str, Any]:
    """Site, node, targets and ports of the start and schedule forms; ApplicationError on
    a bad field (the site and node are looked up in the caller's scope: 404 outside it)."""
    site_id = _id(request.POST.get("site"))
    if site_id is None:
        raise ApplicationError("Choose a site.", field="site")
    site = scoped_get(request, Site, "discovery:run", org=org, pk=site_id)
    node = None
    node_id = _id(request.POST.get("node"))
    if node_id is not None:
        node = scoped_get(request, FleetNode, "fleetnode:read", org=org, pk=node_id)
    raw_ports = [p for p in _SPLIT.split(str(request.POST.get("ports", ""))[:4000]) if p]
    ports = [_id(p) for p in raw_ports]
    if any(p is None or not 1 <= p <= 65535 for p in ports):
        raise ApplicationError("Ports are numbers from 1 to 65535, separated by commas.")
    return {
        "site": site,
        "node": node,
        "target_list": [t for t in _SPLIT.split(str(request.POST.get("targets", ""))[:20000]) if t],
        "ports": [p for p in ports if p is not None] or None,
    }


@fleet_page("discovery:run")
@require_POST
def discovery_start(request: PageRequest, org: Organization) -> HttpResponse:
    try:
        run = services.run_create(actor=Actor.for_request(request), **_scan_form(request, org))
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("discovery")
    return redirect(f"{reverse('discovery')}?run={run.pk}")


@fleet_page("discovery:run")
@require_POST
def discovery_schedule(request: PageRequest, org: Organization) -> HttpResponse:
    try:
        saved = schedule.saved_range_create(
            actor=Actor.for_request(request),
            name=str(request.POST.get("name", ""))[:200],
            interval_minutes=_id(request.POST.get("interval_minutes")) or 0,
            **_scan_form(request, org),
        )
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"'{saved.name}' is rescanned every {saved.interval_minutes} min."
        )
    return redirect("discovery")


@fleet_page("discovery:run")
@require_POST
def discovery_unschedule(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    saved = scoped_get(request, SavedRange, "discovery:run", org=org, pk=pk)
    try:
        schedule.saved_range_delete(actor=Actor.for_request(request), saved=saved)
    except Refusal as exc:
        messages.error(request, exc.message)
    return redirect("discovery")


def _moved_on(request: PageRequest, runs: Any, current: DiscoveryRun | None) -> DiscoveryRun | None:
    """The latest later run of the same site when this run found more devices than it still
    has: a device row belongs to the last run that saw it, so a rescan takes it along."""
    if current is None or not current.found:
        return None
    still = DiscoveredDevice.objects.restrict(request.user, "discovery:run").filter(run=current)
    if current.found <= still.count():
        return None
    later: DiscoveryRun | None = (
        runs.filter(site_id=current.site_id, pk__gt=current.pk).order_by("-pk").first()
    )
    return later


@fleet_page("miner:pair")
@require_POST
def discovery_pair(request: PageRequest, org: Organization) -> HttpResponse:
    run_id = _id(request.POST.get("run"))
    visible = DiscoveredDevice.objects.restrict(request.user, "miner:pair").filter(org=org)
    all_new = bool(request.POST.get("all_new"))
    if all_new:
        chosen = list(visible.filter(run_id=run_id, miner__isnull=True))
    else:
        ids = [i for i in (_id(v) for v in request.POST.getlist("device")[:4096]) if i]
        chosen = list(visible.filter(pk__in=ids))
    run = _runs(request, org).filter(pk=run_id).first() if run_id else None
    node = run.node if run is not None and run.node is not None else None  # pair to the finder
    password = str(request.POST.get("password", ""))[:256] or None
    back = f"{reverse('discovery')}?run={run.pk}" if run is not None else reverse("discovery")
    if all_new and not chosen:
        messages.info(request, "No new devices in this run to pair: every device is paired.")
        return redirect(back)
    try:
        job = pairing.pairing_create(
            actor=Actor.for_request(request),
            org=org,
            devices=chosen,
            node=node,
            username=str(request.POST.get("username", ""))[:120],
            password=password,
            run=run,
        )
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect(back)
    # back to the run: each device's outcome appears in its row as the job gets to it
    messages.success(request, f"Pairing {job.total} devices (job {job.pk}).")
    return redirect(back if run is not None else reverse("job-page", args=[job.pk]))
