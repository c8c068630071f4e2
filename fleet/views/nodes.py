"""Fleet-node pages: the list (state, last seen, version, health, miners, dropped), "Add node"
(the code once and the exact agent command), pending confirmations, a node's page, confirm
and revoke. Thin: every write is a service call, every read goes through ``restrict``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.models import Organization, Site
from accounts.views.base import PageRequest, scoped_get
from fleet.models import EnrollmentCode, FleetNode, Miner, NodeCommand, NodeStatus
from fleet.nodes import enrollment, lifecycle
from fleet.nodes.state import LIVE_NODES, connection_state
from fleet.views.base import fleet_page

RECENT_COMMANDS = 20
ENROLL_SESSION_KEY = "fleetnode_enroll"  # the code just minted, shown once by the GET after


def uptime_text(seconds: Any) -> str:
    """``3 d 4 h``, ``4 h 12 min``, ``12 min``, ``40 s``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return ""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{total} s"


def _state(node: FleetNode) -> str:
    return connection_state(bool(node.channel_name), node.last_seen_at, status=str(node.status))


def _nodes(request: PageRequest, org: Organization) -> Any:
    return (
        FleetNode.objects.restrict(request.user, "fleetnode:read")
        .filter(LIVE_NODES, org=org)
        .select_related("site")
        .annotate(miner_count=Count("miners"))
    )


def _node(request: PageRequest, org: Organization, pk: int) -> FleetNode:
    node: FleetNode = scoped_get(
        request,
        FleetNode.unscoped.filter(LIVE_NODES).select_related("site"),
        "fleetnode:read",
        org=org,
        pk=pk,
    )
    return node


def _rows(nodes: Any) -> list[dict[str, Any]]:
    return [{"node": n, "state": _state(n)} for n in nodes]


@fleet_page("fleetnode:read")
@require_GET
def node_list(request: PageRequest, org: Organization) -> HttpResponse:
    """Confirmed nodes (revoked ones too with ``?show=revoked``) and pending registrations."""
    show_revoked = request.GET.get("show") == "revoked"
    nodes = list(_nodes(request, org))
    shown = [
        n
        for n in nodes
        if n.status == NodeStatus.CONFIRMED or (show_revoked and n.status == NodeStatus.REVOKED)
    ]
    context = {
        "org": org,
        "rows": _rows(shown),
        "pending": [n for n in nodes if n.status == NodeStatus.AWAITING],
        "show_revoked": show_revoked,
        "revoked_count": sum(1 for n in nodes if n.status == NodeStatus.REVOKED),
        "can_manage": has_perm(request.user, "fleetnode:manage", org.pk),
        "sites": Site.objects.restrict(request.user, "site:read").filter(org=org),
    }
    return render(request, "fleet/nodes/list.html", context)


@fleet_page("fleetnode:manage")
@require_http_methods(["GET", "POST"])
def node_add(request: PageRequest, org: Organization) -> HttpResponse:
    """GET: the form, the outstanding codes and (once, right after the POST) the new code with
    its agent command. POST mints a code and redirects here (a reload mints nothing)."""
    if request.method == "POST":
        return _code_mint(request, org)
    minted = request.session.pop(ENROLL_SESSION_KEY, None)
    context: dict[str, Any] = {
        "org": org,
        "sites": Site.objects.restrict(request.user, "site:read").filter(org=org),
        "codes": enrollment.enrollment_codes_outstanding(org),
    }
    if isinstance(minted, dict) and minted.get("org") == org.pk:
        context |= {
            "code": minted["code"],
            "expires_at": minted["expires_at"],
            "command": enrollment.enroll_command(
                request.build_absolute_uri("/").rstrip("/"), minted["code"]
            ),
        }
    response = render(request, "fleet/nodes/add.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _code_mint(request: PageRequest, org: Organization) -> HttpResponse:
    site = None
    chosen = str(request.POST.get("site", ""))
    if chosen:
        if not chosen.isascii() or not chosen.isdigit():
            messages.error(request, "Choose a site from the list.")
            return redirect("node-add")
        site = scoped_get(request, Site, "site:read", org=org, pk=int(chosen))
    try:
        code, row = enrollment.enrollment_code_create(
            actor=Actor.for_request(request), org=org, site=site
        )
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("node-add")
    request.session[ENROLL_SESSION_KEY] = {
        "org": org.pk,
        "code": code,
        "expires_at": row.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return redirect("node-add")


@fleet_page("fleetnode:manage")
@require_POST
def enrollment_code_cancel(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    code: EnrollmentCode = scoped_get(
        request, EnrollmentCode.unscoped.all(), "fleetnode:manage", org=org, pk=pk
    )
    try:
        enrollment.enrollment_code_cancel(actor=Actor.for_request(request), code=code)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The enrollment code is cancelled: no node can use it now.")
    return redirect("node-add")


@fleet_page("fleetnode:read")
@require_GET
def node_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    node = _node(request, org, pk)
    context = {
        "org": org,
        "node": node,
        "state": _state(node),
        # a revoked node's last report is history, not its health
        "health": node.health if node.status != NodeStatus.REVOKED else {},
        "uptime": uptime_text((node.health or {}).get("uptime_s"))
        if node.status != NodeStatus.REVOKED
        else "",
        "miners": Miner.objects.restrict(request.user, "miner:read").filter(node=node)[:200],
        "commands": NodeCommand.unscoped.filter(node=node).order_by("-issued_at", "-id")[
            :RECENT_COMMANDS
        ],
        "can_manage": has_perm(request.user, "fleetnode:manage", node.org_id, node.site_id),
    }
    return render(request, "fleet/nodes/detail.html", context)


@fleet_page("fleetnode:manage")
@require_POST
def node_confirm(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    node = _node(request, org, pk)
    try:
        enrollment.node_confirm(
            actor=Actor.for_request(request),
            node=node,
            fingerprint=str(request.POST.get("fingerprint", ""))[:64],
        )
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{node.name} is confirmed: it can now fetch its credentials.")
    return redirect("node-page", node.pk)


@fleet_page("fleetnode:manage")
@require_POST
def node_revoke(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    node = _node(request, org, pk)
    pending = node.status == NodeStatus.AWAITING
    try:
        lifecycle.node_revoke(actor=Actor.for_request(request), node=node)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        done = (
            f"The registration of {node.name} is rejected; it can't connect."
            if pending
            else f"{node.name} is revoked; its miners are released."
        )
        messages.success(request, done)
    return redirect("node-page", node.pk)
