"""Fleet nodes in the Django admin: read-only, scoped, with confirm and revoke actions that go
through the services (confirm asks for the fingerprint the node printed, like the page)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from accounts.actor import Actor
from accounts.admin import ScopedAdmin, _run, in_scope
from fleet.models import FleetNode, NodeCommand, NodeStatus
from fleet.nodes.enrollment import node_confirm
from fleet.nodes.lifecycle import node_revoke


@admin.action(description="Confirm selected nodes (asks for each fingerprint)")
def confirm_nodes(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[FleetNode]
) -> TemplateResponse | None:
    pending = list(queryset.filter(status=NodeStatus.AWAITING))
    if request.POST.get("apply") == "1":
        actor = Actor.for_request(request)
        calls = [
            partial(
                node_confirm,
                actor=actor,
                node=node,
                fingerprint=str(request.POST.get(f"fingerprint-{node.pk}", "")),
            )
            for node in pending
        ]
        _run(request, modeladmin, calls)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Confirm fleet nodes",
        "nodes": pending,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "fleet/nodes/admin_confirm.html", context)


@admin.action(description="Revoke selected nodes")
def revoke_nodes(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[FleetNode]
) -> None:
    actor = Actor.for_request(request)
    live = queryset.exclude(status=NodeStatus.REVOKED)
    _run(request, modeladmin, [partial(node_revoke, actor=actor, node=n) for n in live])


@admin.register(FleetNode)
class FleetNodeAdmin(ScopedAdmin):
    scope_permission = "fleetnode:read"
    list_display = [
        "name",
        "org",
        "site",
        "status",
        "fingerprint",
        "agent_version",
        "last_seen_at",
        "replica",
        "dropped_events",
    ]
    list_filter = [in_scope("org"), in_scope("site"), "status"]
    search_fields = ["name", "hostname", "fingerprint"]
    exclude = ["identity_key", "encryption_key", "api_key_hash", "sealed_data_key"]
    list_select_related = ["org", "site"]
    actions = [confirm_nodes, revoke_nodes]


@admin.register(NodeCommand)
class NodeCommandAdmin(ScopedAdmin):
    scope_permission = "fleetnode:read"
    list_display = ["kind", "node", "seq", "kid", "status", "actor_label", "issued_at"]
    list_filter = [in_scope("org"), "status", "kind"]
    list_select_related = ["node"]
