from __future__ import annotations

import datetime as dt
import math
from typing import Any, ClassVar

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.base import scoped_related
from accounts.models import Site
from fleet.actions import ACTIONS, POOL_URL_PATTERN, WORKER_PATTERN
from fleet.api.schema import one_of_values
from fleet.models import Job, JobItem, JobStatus, Miner, MinerHealth, MinerLatest
from fleet.models.telemetry import LATEST_FIELDS
from fleet.netguard import DIALABLE_HELP
from fleet.selectors import job_items_visible, job_params_shown
from miners.antminer import AntminerDriver
from miners.protoos import ProtoOSDriver
from miners.registry import NATIVE_API_PREFIXES
from miners.types import CoolingMode, PowerMode


class UtcDateTimeField(serializers.DateTimeField):
    """ISO 8601 in UTC (``…Z``), as every API date-time. Given its zone, DRF skips looking up
    the current one for each value: a fifth of the miner list's serialization."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", dt.UTC)
        super().__init__(**kwargs)


UTC_FIELD_MAPPING = {
    **serializers.ModelSerializer.serializer_field_mapping,
    models.DateTimeField: UtcDateTimeField,
}


class LatestSerializer(serializers.ModelSerializer[MinerLatest]):
    """The last successful poll (``updated_at``) and how the last attempt went."""

    serializer_field_mapping = UTC_FIELD_MAPPING

    class Meta:
        model = MinerLatest
        fields = list(LATEST_FIELDS)
        read_only_fields = fields

    def to_representation(self, instance: MinerLatest) -> Any:
        # a row whose polls all failed has no figures yet: null, as for a miner never polled
        return None if instance.updated_at is None else super().to_representation(instance)


class MinerSerializer(serializers.ModelSerializer[Miner]):
    serializer_field_mapping = UTC_FIELD_MAPPING
    site = scoped_related(Site, "site:read")(read_only=True)
    health = serializers.ChoiceField(choices=MinerHealth.choices, read_only=True)
    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), read_only=True)
    # declared (not a method field): its fields are built once per list, not once per row
    latest = LatestSerializer(
        read_only=True,
        allow_null=True,
        help_text="The last poll's figures; null until the miner has been polled.",
    )
    requested_power_target_w = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="A power target an action set that no poll has shown applied yet (else null).",
    )
    embedded_view_available = serializers.BooleanField(
        read_only=True,
        help_text="Whether the single-miner view (/miners/<id>/view/) can show this miner; "
        "when false, device_ui_url is the rig's own web UI.",
    )
    device_ui_url = serializers.CharField(read_only=True, help_text="The rig's own web UI.")
    proxy_url = serializers.SerializerMethodField(
        help_text="Where this miner's own API is reached through the server's proxy, e.g. "
        "/api-proxy/miners/42/api/v1 (ProtoOS) or /api-proxy/miners/42/cgi-bin (stock "
        "Antminer); null for drivers without an HTTP API (docs/proxy.md)."
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
            "requested_power_target_w",
            "embedded_view_available",
            "device_ui_url",
            "proxy_url",
            "latest",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_proxy_url(self, miner: Miner) -> str | None:
        prefix = NATIVE_API_PREFIXES.get(miner.driver)
        return None if prefix is None else f"/api-proxy/miners/{miner.pk}{prefix}"


class MinerCreateSerializer(serializers.Serializer[Any]):
    """Add a miner by address: the server identifies it through the drivers."""

    site = scoped_related(Site, "site:read")()
    host = serializers.IPAddressField(help_text=DIALABLE_HELP)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    # the drivers of the server's registry (fleet.runtime: pyasic isn't loaded in servers)
    driver = serializers.ChoiceField(
        choices=sorted(d.name for d in (ProtoOSDriver, AntminerDriver)), required=False
    )
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


class JobItemSerializer(serializers.ModelSerializer[JobItem]):
    class Meta:
        model = JobItem
        fields = ["miner", "miner_name", "status", "error", "finished_at"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer[Job]):
    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    params = serializers.SerializerMethodField(
        help_text="The job's parameters (secrets masked); null unless you can see every "
        "site the job acts at."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "params",
            "status",
            "total",
            "done",
            "failed",
            "batch_size",
            "interval_s",
            "actor_label",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {}, "nullable": True})
    def get_params(self, job: Job) -> dict[str, Any] | None:
        request = self.context.get("request")
        if request is None or not job_params_shown(job, request.user):
            return None
        params: dict[str, Any] = job.params
        return params


class JobDetailSerializer(JobSerializer):
    items = serializers.SerializerMethodField(help_text="Per-miner results (miners you can see).")

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "items"]
        read_only_fields = fields

    @extend_schema_field(JobItemSerializer(many=True))
    def get_items(self, job: Job) -> list[dict[str, Any]]:
        items = job_items_visible(job, self.context["request"].user)
        return list(JobItemSerializer(items, many=True).data)


class MinerSelectionSerializer(serializers.Serializer[Any]):
    site = scoped_related(Site, "site:read")(required=False)
    health = serializers.ChoiceField(choices=MinerHealth.choices, required=False)
    model = serializers.CharField(max_length=120, required=False)
    firmware = serializers.CharField(max_length=120, required=False)
    driver = serializers.CharField(max_length=40, required=False)
    search = serializers.CharField(max_length=120, required=False)


class NumberField(serializers.FloatField):
    """A finite number: DRF's float field also takes ``true``/``false`` (as 1 and 0) and
    ``"nan"``, which every bound lets through."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = float(super().to_internal_value(data))
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class JobCreateSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=sorted(ACTIONS))
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text="The action's parameters (see the per-miner action routes).",
    )
    miners = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=20000,
        help_text="Miner ids; or give filter instead.",
    )
    filter = MinerSelectionSerializer(required=False, help_text="Every miner that matches.")
    batch_size = serializers.IntegerField(min_value=1, max_value=10000, required=False)
    interval_s = NumberField(min_value=0, max_value=3600, required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("miners" in data) == ("filter" in data):
            raise serializers.ValidationError("Give either miners (ids) or filter.")
        return data


# An action's parameters, for the schema alone: ``miners.actions`` cleans the body itself and
# refuses a key it doesn't name, so the schema closes the object (``additionalProperties:
# false``, ``fleet.api.schema``) and adds ``schema_rules``, what the cleaner checks across
# fields. A comment, not a docstring: drf-spectacular would print it as each body's description.
class ActionBody(serializers.Serializer[Any]):
    schema_rules: ClassVar[dict[str, Any]] = {}


class BlinkSerializer(ActionBody):
    on = serializers.BooleanField(required=False, default=True)
    seconds = serializers.IntegerField(min_value=1, max_value=3600, required=False, allow_null=True)


class PowerTargetSerializer(ActionBody):
    """Exactly one of ``watts`` or ``mode``."""

    schema_rules = {"minProperties": 1, "maxProperties": 1}
    watts = serializers.IntegerField(min_value=100, max_value=30000, required=False)
    mode = serializers.ChoiceField(choices=[m.value for m in PowerMode], required=False)


class PoolSerializer(ActionBody):
    url = serializers.RegexField(POOL_URL_PATTERN, help_text="stratum+tcp:// or stratum2+tcp://")
    user = serializers.RegexField(
        WORKER_PATTERN,
        max_length=200,
        help_text="Worker, not blank; may use {site}, {name}, {serial}, {mac}, {host}, {rack}, "
        "{position} (no other placeholder).",
    )
    password = serializers.CharField(max_length=200, required=False, allow_blank=True)
    authority_pubkey = serializers.CharField(max_length=200, required=False, allow_blank=True)


class PoolsSerializer(ActionBody):
    pools = serializers.ListField(child=PoolSerializer(), min_length=1, max_length=3)


class CoolingSerializer(ActionBody):
    """``manual`` needs ``speed_percent`` (a number, not null)."""

    schema_rules = {
        "anyOf": [
            {
                "properties": {
                    "mode": one_of_values(
                        *(m.value for m in CoolingMode if m is not CoolingMode.MANUAL)
                    )
                }
            },
            {
                "properties": {
                    "mode": one_of_values(CoolingMode.MANUAL.value),
                    "speed_percent": {"type": "integer"},
                },
                "required": ["speed_percent"],
            },
        ]
    }
    mode = serializers.ChoiceField(choices=[m.value for m in CoolingMode])
    speed_percent = serializers.IntegerField(
        min_value=0, max_value=100, required=False, allow_null=True
    )
    target_temp_c = serializers.IntegerField(
        min_value=20, max_value=100, required=False, allow_null=True
    )


ACTION_BODIES: dict[str, type[ActionBody] | None] = {
    "reboot": None,
    "blink": BlinkSerializer,
    "start_mining": None,
    "stop_mining": None,
    "set_power_target": PowerTargetSerializer,
    "set_pools": PoolsSerializer,
    "set_cooling": CoolingSerializer,
}


class JobAcceptedSerializer(serializers.Serializer[Any]):
    job = JobSerializer()


class SamplesQuerySerializer(serializers.Serializer[Any]):
    # "from" is a Python keyword: declared below
    to = serializers.DateTimeField(required=False)
    step = serializers.IntegerField(min_value=10, max_value=86400, required=False)


SamplesQuerySerializer._declared_fields["from"] = serializers.DateTimeField(required=False)


class SamplePointSerializer(serializers.Serializer[Any]):
    t = serializers.DateTimeField()
    hashrate_ths = serializers.FloatField(allow_null=True)
    power_w = serializers.FloatField(allow_null=True)
    max_temp_c = serializers.FloatField(allow_null=True)


class SamplesSerializer(serializers.Serializer[Any]):
    to = serializers.DateTimeField()
    step = serializers.IntegerField(help_text="Seconds per point (each an average).")
    points = SamplePointSerializer(many=True)


SamplesSerializer._declared_fields["from"] = serializers.DateTimeField()


class TotalsSerializer(serializers.Serializer[Any]):
    miners = serializers.IntegerField()
    reporting = serializers.IntegerField(
        help_text="Miners whose figures are current and counted in the totals: health ok, "
        "degraded or default_password, with a reading, and fewer than 3 failed polls in a row "
        "(offline, auth_needed and unknown miners never report)."
    )
    stale = serializers.IntegerField(
        help_text="Miners with a last reading that is not counted (it predates the outage)."
    )
    hashrate_ths = serializers.FloatField(help_text="Sum over the reporting miners.")
    power_w = serializers.FloatField(help_text="Sum over the reporting miners.")
    efficiency_jth = serializers.FloatField(allow_null=True)
    max_temp_c = serializers.FloatField(
        allow_null=True, help_text="Hottest chip among the reporting miners."
    )
    health = serializers.DictField(child=serializers.IntegerField(), help_text="Miners by health.")


class SiteTotalsSerializer(TotalsSerializer):
    site = serializers.IntegerField()
    name = serializers.CharField()


class ModelTotalsSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    miners = serializers.IntegerField()
    reporting = serializers.IntegerField(help_text="As in the totals.")
    hashrate_ths = serializers.FloatField(help_text="Sum over the reporting miners.")


class FleetSummarySerializer(serializers.Serializer[Any]):
    totals = TotalsSerializer()
    sites = SiteTotalsSerializer(many=True)
    models = ModelTotalsSerializer(many=True)


class LogsQuerySerializer(serializers.Serializer[Any]):
    lines = serializers.IntegerField(min_value=1, max_value=10000, required=False, default=200)


# "source" is an attribute of every DRF field: declared by name instead
LogsQuerySerializer._declared_fields["source"] = serializers.ChoiceField(
    choices=["os", "pool_sw", "miner_sw", "miner_web_server"],
    required=False,
    help_text="ProtoOS log source (others have one log).",
)


class LogsSerializer(serializers.Serializer[Any]):
    lines = serializers.ListField(child=serializers.CharField(allow_blank=True))
