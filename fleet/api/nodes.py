"""Fleet nodes, operator side: list, detail, enrollment codes, confirm, revoke, miners, ping."""

from __future__ import annotations

from typing import cast

import django_filters
from django.db.models import Count, QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet, no_store
from fleet.api import node_serializers as s
from fleet.models import FleetNode, NodeCommand, NodeStatus
from fleet.nodes import enrollment, lifecycle, ownership
from fleet.nodes.commands import node_ping
from fleet.nodes.state import LIVE_NODES


def enroll_command(request: Request, code: str) -> str:
    return enrollment.enroll_command(request.build_absolute_uri("/").rstrip("/"), code)


class NodeFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter is untyped
    status = django_filters.ChoiceFilter(choices=NodeStatus.choices)
    ordering = django_filters.OrderingFilter(
        fields=(
            ("name", "name"),
            ("status", "status"),
            ("last_seen_at", "last_seen_at"),
            ("created_at", "created_at"),
        )
    )

    class Meta:
        model = FleetNode
        fields = ["status"]

    def filter_queryset(self, queryset: QuerySet[FleetNode]) -> QuerySet[FleetNode]:
        filtered: QuerySet[FleetNode] = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("ordering"):
            filtered = filtered.order_by(*filtered.query.order_by, "id")
        return filtered


_PING = inline_serializer(
    "NodePing",
    {
        "command_id": serializers.CharField(),
        "status": serializers.CharField(),
        "error": serializers.CharField(),
    },
)


class FleetNodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Fleet nodes of your organizations, with their connection state and health."""

    queryset = (
        FleetNode.unscoped.filter(LIVE_NODES)
        .select_related("site")
        .annotate(miner_count=Count("miners"))
        .order_by("org_id", "name", "id")
    )
    serializer_class = s.FleetNodeSerializer
    filterset_class = NodeFilter
    permissions = {
        "list": "fleetnode:read",
        "retrieve": "fleetnode:read",
        "commands": "fleetnode:read",
        "enrollment_codes": "fleetnode:manage",
        "confirm": "fleetnode:manage",
        "revoke": "fleetnode:manage",
        "pair_miner": "fleetnode:manage",
        "ping": "fleetnode:manage",
    }

    @extend_schema(
        request=s.EnrollmentCodeCreateSerializer, responses={201: s.EnrollmentCodeSerializer}
    )
    @action(detail=False, methods=["post"], url_path="enrollment-codes")
    def enrollment_codes(self, request: Request) -> Response:
        """A one-use enrollment code (1 h), shown once, and the agent command that uses it."""
        form = s.EnrollmentCodeCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        form.is_valid(raise_exception=True)
        code, row = enrollment.enrollment_code_create(
            actor=self.actor(), org=form.validated_data["org"], site=form.validated_data["site"]
        )
        body = {
            "code": code,
            "expires_at": row.expires_at,
            "command": enroll_command(request, code),
        }
        return no_store(
            Response(s.EnrollmentCodeSerializer(body).data, status=status.HTTP_201_CREATED)
        )

    @extend_schema(request=s.ConfirmSerializer, responses={200: s.FleetNodeSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str | None = None) -> Response:
        """Confirm a registration: ``fingerprint`` must be what the node printed."""
        node = cast(FleetNode, self.get_object())
        form = s.ConfirmSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        node = enrollment.node_confirm(
            actor=self.actor(), node=node, fingerprint=form.validated_data["fingerprint"]
        )
        return Response(s.FleetNodeSerializer(self._fresh(node)).data)

    @extend_schema(request=s.RevokeSerializer, responses={200: s.FleetNodeSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke: the live stream closes (4403), keys die, its miners are released."""
        node = cast(FleetNode, self.get_object())
        form = s.RevokeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        node = lifecycle.node_revoke(
            actor=self.actor(), node=node, reason=form.validated_data["reason"]
        )
        return Response(s.FleetNodeSerializer(self._fresh(node)).data)

    @extend_schema(request=s.NodeMinerCreateSerializer, responses={201: s.NodeMinerSerializer})
    @action(detail=True, methods=["post"], url_path="miners")
    def pair_miner(self, request: Request, pk: str | None = None) -> Response:
        """Pair a miner on the node's LAN to this node (the cloud never dials it)."""
        node = cast(FleetNode, self.get_object())
        form = s.NodeMinerCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        miner = ownership.miner_pair_via_node(
            actor=self.actor(),
            node=node,
            site=data["site"],
            host=data["host"],
            port=data["port"],
            driver=data["driver"],
            username=data["username"],
            password=data.get("password"),
            name=data["name"],
        )
        return Response(s.NodeMinerSerializer(miner).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: _PING})
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, pk: str | None = None) -> Response:
        """A signed ``ping`` through whichever replica holds the node's stream; waits for the
        final ack (at most the command's expiry plus a grace)."""
        node = cast(FleetNode, self.get_object())
        outcome = node_ping(actor=self.actor(), node=node)
        return Response(
            {"command_id": outcome.command_id, "status": outcome.status, "error": outcome.error}
        )

    @extend_schema(responses={200: s.NodeCommandSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def commands(self, request: Request, pk: str | None = None) -> Response:
        """The node's commands, newest first, and what became of them (paginated)."""
        node = cast(FleetNode, self.get_object())
        rows = NodeCommand.unscoped.filter(node=node).order_by("-issued_at", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.NodeCommandSerializer(page, many=True).data)

    def _fresh(self, node: FleetNode) -> FleetNode:
        return cast(FleetNode, self.get_queryset().get(pk=node.pk))
