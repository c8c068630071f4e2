from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.base import StrictInput, scoped_related
from accounts.models import Site
from discovery import limits
from discovery.models import DiscoveredDevice, DiscoveryRun, SavedRange
from fleet.models import FleetNode


class RunSerializer(serializers.ModelSerializer[DiscoveryRun]):
    class Meta:
        model = DiscoveryRun
        fields = [
            "id",
            "site",
            "via",
            "node",
            "targets",
            "expanded_count",
            "ports",
            "status",
            "outcome",
            "error",
            "probed",
            "total",
            "found",
            "new",
            "updated",
            "rejected",
            "actor_label",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunCreateSerializer(StrictInput):
    site = scoped_related(Site, "site:read")()
    targets = serializers.ListField(
        child=serializers.CharField(max_length=limits.TARGET_CHARS),
        min_length=1,
        max_length=limits.MAX_TARGETS,
    )
    ports = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=65535),
        required=False,
        max_length=limits.MAX_PORTS,
    )
    node = scoped_related(FleetNode, "fleetnode:read")(required=False, allow_null=True)


class DeviceSerializer(serializers.ModelSerializer[DiscoveredDevice]):
    # the linked miner only if the caller may read it (``selectors.with_visible_miner``)
    miner = serializers.IntegerField(source="visible_miner_id", read_only=True, allow_null=True)

    class Meta:
        model = DiscoveredDevice
        fields = [
            "id",
            "identifier",
            "host",
            "port",
            "scheme",
            "driver",
            "make",
            "model",
            "firmware",
            "serial",
            "mac",
            "node",
            "miner",
            "run",
            "site",
            "pair_outcome",
            "pair_error",
            "first_seen",
            "last_seen",
        ]
        read_only_fields = fields


class DeviceQuerySerializer(serializers.Serializer[Any]):
    run = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    new = serializers.BooleanField(required=False, allow_null=True, default=None)


class PairSerializer(StrictInput):
    devices = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        min_length=1,
        max_length=4096,
    )
    node = scoped_related(FleetNode, "fleetnode:read")(required=False, allow_null=True)
    username = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=256, required=False, write_only=True, trim_whitespace=False
    )


class SavedRangeSerializer(serializers.ModelSerializer[SavedRange]):
    class Meta:
        model = SavedRange
        fields = [
            "id",
            "site",
            "node",
            "name",
            "targets",
            "ports",
            "interval_minutes",
            "enabled",
            "next_run_at",
            "last_run",
            "created_at",
        ]
        read_only_fields = fields


class SavedRangeCreateSerializer(RunCreateSerializer):
    name = serializers.CharField(max_length=limits.NAME_CHARS)
    interval_minutes = serializers.IntegerField(
        min_value=limits.MIN_INTERVAL_MINUTES, max_value=limits.MAX_INTERVAL_MINUTES, default=15
    )
