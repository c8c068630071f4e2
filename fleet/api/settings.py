"""``/api/v1/fleet/settings/``: the org's fleet settings (the poll interval).

One object per org, no id in the path: ``org`` (query parameter on GET, body field on PUT and
PATCH) names it, defaulting to the caller's organization when they belong to one. Reading
needs ``fleet:read`` in that org, changing it ``org:manage`` (checked by the service).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet, StrictInput
from accounts.api.serializers import org_field
from accounts.authz import require_perm
from accounts.models import Organization
from fleet.models import FleetSettings
from fleet.models.settings import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from fleet.services.fleet_settings import (
    default_poll_interval,
    fleet_settings_for,
    fleet_settings_update,
)


class FleetSettingsSerializer(serializers.Serializer[FleetSettings]):
    org = serializers.IntegerField(source="org_id", read_only=True)
    poll_interval_s = serializers.IntegerField(read_only=True)
    default_poll_interval_s = serializers.SerializerMethodField()
    is_default = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()

    def get_default_poll_interval_s(self, obj: FleetSettings) -> int:
        return default_poll_interval()

    def get_is_default(self, obj: FleetSettings) -> bool:
        """True while the org has no settings of its own (the deployment's defaults)."""
        return obj._state.adding

    def get_updated_at(self, obj: FleetSettings) -> str | None:
        return None if obj._state.adding else obj.updated_at.isoformat()


class FleetSettingsQuerySerializer(StrictInput):
    org = org_field()


class FleetSettingsUpdateSerializer(StrictInput):
    org = org_field()
    poll_interval_s = serializers.IntegerField(
        min_value=POLL_INTERVAL_MIN,
        max_value=POLL_INTERVAL_MAX,
        help_text="Seconds between two polls of each miner; takes effect at each one's next poll.",
    )


class FleetSettingsViewSet(ScopedViewSet):
    """The poll interval of an organization's miners (default ``FLEET_POLL_INTERVAL``)."""

    queryset = FleetSettings.unscoped.all()
    serializer_class = FleetSettingsSerializer
    pagination_class = None
    permissions = {
        "retrieve": "fleet:read",
        "update": "org:manage",
        "partial_update": "org:manage",
    }

    def _org(self, data: Any) -> Organization:
        form = FleetSettingsQuerySerializer(data=data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        org: Organization = form.validated_data["org"]
        return org

    @extend_schema(parameters=[FleetSettingsQuerySerializer],
                   responses={200: FleetSettingsSerializer})  # fmt: skip
    def retrieve(self, request: Request) -> Response:
        org = self._org(request.query_params)
        require_perm(request.user, "fleet:read", org.pk)
        return Response(FleetSettingsSerializer(fleet_settings_for(org)).data)

    @extend_schema(request=FleetSettingsUpdateSerializer, responses={200: FleetSettingsSerializer})
    def update(self, request: Request) -> Response:
        return self._write(request, partial=False)

    @extend_schema(request=FleetSettingsUpdateSerializer, responses={200: FleetSettingsSerializer})
    def partial_update(self, request: Request) -> Response:
        return self._write(request, partial=True)

    def _write(self, request: Request, *, partial: bool) -> Response:
        form = FleetSettingsUpdateSerializer(
            data=request.data, partial=partial, context=self.get_serializer_context()
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        org = data.get("org") or self._org({})
        if "poll_interval_s" in data:
            row = fleet_settings_update(
                actor=self.actor(), org=org, poll_interval_s=data["poll_interval_s"]
            )
        else:  # an empty PATCH changes nothing, but only someone who may change it gets an answer
            require_perm(request.user, "org:manage", org.pk)
            row = fleet_settings_for(org)
        return Response(FleetSettingsSerializer(row).data)


# a collection route (detail=False): the caller needs the action's permission in some org
settings_view = FleetSettingsViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update"},
    detail=False,
    basename="fleet-settings",
)
