from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.base import scoped_related
from accounts.models import Site
from fleet.models import Miner, MinerHealth, MinerLatest


class LatestSerializer(serializers.ModelSerializer[MinerLatest]):
    """The last successful poll (``updated_at``) and how the last attempt went."""

    class Meta:
        model = MinerLatest
        fields = [
            "state",
            "hashrate_ths",
            "power_w",
            "efficiency_jth",
            "power_target_w",
            "max_temp_c",
            "temperatures",
            "fans",
            "hashboards",
            "psus",
            "pools",
            "issues",
            "updated_at",
            "polled_at",
            "failures",
            "last_error",
        ]
        read_only_fields = fields


class MinerSerializer(serializers.ModelSerializer[Miner]):
    site = scoped_related(Site, "site:read")(read_only=True)
    health = serializers.ChoiceField(choices=MinerHealth.choices, read_only=True)
    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), read_only=True)
    latest = serializers.SerializerMethodField(
        help_text="The last poll's figures; null until the miner has been polled."
    )

    class Meta:
        model = Miner
        fields = [
            "id",
            "name",
            "site",
            "host",
            "port",
            "scheme",
            "driver",
            "identifier",
            "make",
            "model",
            "firmware",
            "serial",
            "mac",
            "hostname",
            "managed_by",
            "capabilities",
            "health",
            "tags",
            "rack",
            "position",
            "created_at",
            "updated_at",
            "latest",
        ]
        read_only_fields = fields

    @extend_schema_field(LatestSerializer(allow_null=True))
    def get_latest(self, miner: Miner) -> dict[str, Any] | None:
        latest = getattr(miner, "latest", None)
        if latest is None or latest.updated_at is None:
            return None
        return dict(LatestSerializer(latest).data)


class MinerCreateSerializer(serializers.Serializer[Any]):
    """Add a miner by address: the server identifies it through the drivers."""

    site = scoped_related(Site, "site:read")()
    host = serializers.IPAddressField()
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    driver = serializers.CharField(max_length=40, required=False)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    username = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=256,
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="The miner's password; stored encrypted, never returned.",
    )


class MinerUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=120, required=False)
    site = scoped_related(Site, "site:read")(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=40), max_length=20, required=False
    )
    rack = serializers.CharField(max_length=60, required=False, allow_blank=True)
    position = serializers.CharField(max_length=60, required=False, allow_blank=True)
    username = serializers.CharField(max_length=120, required=False, allow_blank=True)
    password = serializers.CharField(
        max_length=256, required=False, write_only=True, trim_whitespace=False
    )
