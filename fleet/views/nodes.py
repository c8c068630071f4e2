"""Fleet-node pages: the list (state, last seen, version, health, miners, dropped), "Add node"
(the code once and the exact agent command), pending confirmations, a node's page, confirm
and revoke. Thin: every write is a service call, every read goes through ``restrict``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.models import Organization, Site
from accounts.views.base import PageRequest, scoped_get
from fleet.models import FleetNode, Miner, NodeCommand, NodeStatus
from fleet.nodes import enrollment, lifecycle
from fleet.nodes.state import LIVE_NODES, connection_state
from fleet.views.base import fleet_page

RECENT_COMMANDS = 20


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
    return [
        {"node": n, "state": connection_state(bool(n.channel_name), n.last_seen_at)} for n in nodes
    ]


@fleet_page("fleetnode:read")
@require_GET
def node_list(request: PageRequest, org: Organization) -> HttpResponse:
    nodes = list(_nodes(request, org))
    context = {
        "org": org,
        "rows": _rows(n for n in nodes if n.status != NodeStatus.AWAITING),
        "pending": [n for n in nodes if n.status == NodeStatus.AWAITING],
        "can_manage": has_perm(request.user, "fleetnode:manage", org.pk),
        "sites": Site.objects.restrict(request.user, "site:read").filter(org=org),
    }
    return render(request, "fleet/nodes/list.html", context)


@fleet_page("fleetnode:manage")
@require_POST
def node_add(request: PageRequest, org: Organization) -> HttpResponse:
    """A fresh enrollment code, shown on this response only (it is stored hashed)."""
    site = None
    chosen = str(request.POST.get("site", ""))
    if chosen:
        if not chosen.isascii() or not chosen.isdigit():
            messages.error(request, "Choose a site from the list.")
            return redirect("nodes")
        site = scoped_get(request, Site, "site:read", org=org, pk=int(chosen))
    try:
        code, row = enrollment.enrollment_code_create(
            actor=Actor.for_request(request), org=org, site=site
        )
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("nodes")
    server = request.build_absolute_uri("/").rstrip("/")
    context = {
        "org": org,
        "code": code,
        "expires_at": row.expires_at,
        "command": f"python -m fleetnode enroll --server {server} --code {code}",
    }
    response = render(request, "fleet/nodes/add.html", context)
    response["Cache-Control"] = "no-store"
    return response


@fleet_page("fleetnode:read")
@require_GET
def node_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    node = _node(request, org, pk)
    context = {
        "org": org,
        "node": node,
        "state": connection_state(bool(node.channel_name), node.last_seen_at),
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
    try:
        lifecycle.node_revoke(actor=Actor.for_request(request), node=node)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{node.name} is revoked; its miners are released.")
    return redirect("node-page", node.pk)
