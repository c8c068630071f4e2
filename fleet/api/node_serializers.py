"""Fleet-node API shapes: operator side (nodes, codes, confirm) and the node gateway."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.base import CurrentOrgDefault, scoped_related
from accounts.api.serializers import ModelSerializer, Serializer
from accounts.models import Organization, Site
from fleet.api.serializers import MinerSerializer
from fleet.models import FleetNode, NodeCommand, NodeStatus
from fleet.nodes.state import connection_state
from fleetnode import protocol


class FleetNodeSerializer(ModelSerializer):
    site = scoped_related(Site, "site:read")(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=NodeStatus.choices, read_only=True)
    connected = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField(
        help_text="online, stale or offline; revoked, or pending (awaiting confirmation)"
    )
    miners = serializers.SerializerMethodField(help_text="Miners this node owns")

    class Meta:
        model = FleetNode
        fields = [
            "id",
            "name",
            "site",
            "hostname",
            "status",
            "fingerprint",
            "agent_version",
            "last_seen_at",
            "connected",
            "connected_at",
            "state",
            "health",
            "miners",
            "dropped_events",
            "rejected_reports",
            "telemetry_seq",
            "created_at",
            "expires_at",
            "confirmed_at",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_connected(self, node: FleetNode) -> bool:
        # a revoked node's socket is being closed (4403): it is not connected any more
        return bool(node.channel_name) and node.status == NodeStatus.CONFIRMED

    def get_state(self, node: FleetNode) -> str:
        return connection_state(bool(node.channel_name), node.last_seen_at, status=str(node.status))

    def get_miners(self, node: FleetNode) -> int:
        count = getattr(node, "miner_count", None)
        return int(count) if count is not None else node.miners.count()


class EnrollmentCodeCreateSerializer(Serializer):
    org = scoped_related(Organization, "authenticated")(default=CurrentOrgDefault())
    site = scoped_related(Site, "site:read")(required=False, allow_null=True, default=None)


class EnrollmentCodeSerializer(Serializer):
    code = serializers.CharField(help_text="Shown once; give it to `python -m fleetnode enroll`.")
    expires_at = serializers.DateTimeField()
    command = serializers.CharField(help_text="The exact agent command to run on the node.")


class ConfirmSerializer(Serializer):
    fingerprint = serializers.CharField(max_length=64)


class RevokeSerializer(Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class NodeMinerCreateSerializer(Serializer):
    """A miner on the node's LAN: the node dials it, the cloud never does."""

    site = scoped_related(Site, "site:read")()
    host = serializers.IPAddressField()
    port = serializers.IntegerField(min_value=1, max_value=65535)
    driver = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    username = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=256, required=False, write_only=True, trim_whitespace=False
    )


class NodeMinerSerializer(MinerSerializer):
    """A miner just paired through a node: its identity (make, model, firmware, serial, MAC)
    comes with the node's first poll of it, ``identity: "pending"`` until then."""

    identity = serializers.SerializerMethodField(
        help_text="pending (until the node's first report of the miner) or known"
    )

    class Meta(MinerSerializer.Meta):
        fields = [*MinerSerializer.Meta.fields, "identity"]
        read_only_fields = fields

    def get_identity(self, miner: Any) -> str:
        return "known" if miner.model or miner.serial or miner.mac else "pending"


class NodeCommandSerializer(ModelSerializer):
    class Meta:
        model = NodeCommand
        fields = [
            "command_id",
            "seq",
            "kid",
            "kind",
            "actor_label",
            "issued_at",
            "expires_at",
            "status",
            "error",
            "accepted_at",
            "finished_at",
        ]
        read_only_fields = fields


# --- node gateway ---------------------------------------------------------------------------
class Base64Field(serializers.CharField):
    """Standard base64 of raw bytes (``length`` of them when given) → bytes."""

    def __init__(self, *, length: int | None = None, **kwargs: Any) -> None:
        self.length = length
        super().__init__(max_length=4096, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        text = super().to_internal_value(data)
        try:
            return protocol.b64decode(text, length=self.length, field="value")
        except protocol.ProtocolError as exc:
            raise serializers.ValidationError(str(exc).removeprefix("value: ")) from exc


class RegisterSerializer(Serializer):
    code = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=120)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    agent_version = serializers.CharField(max_length=40)
    identity_key = Base64Field(length=32, help_text="Ed25519 public key, base64 of 32 bytes")
    proof = Base64Field(length=64, help_text="Signature of the UTF-8 bytes of `code`")


class RegisteredSerializer(Serializer):
    node_id = serializers.IntegerField()
    fingerprint = serializers.CharField()
    status = serializers.CharField()


class CredentialsSerializer(Serializer):
    node_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    ts = serializers.IntegerField(help_text="Unix seconds, within 5 minutes of the server")
    sig = Base64Field(length=64, help_text='Signature of `"{node_id}|{ts}"`')


class ApiKeySerializer(Serializer):
    api_key = serializers.CharField()


class ChallengeSerializer(Serializer):
    challenge = serializers.CharField(help_text="base64 of 32 random bytes; 30 s, one use")


class SessionCompleteSerializer(Serializer):
    challenge = serializers.CharField(max_length=100)
    sig = Base64Field(length=64, help_text="Signature of the decoded challenge bytes")


class SessionSerializer(Serializer):
    session_token = serializers.CharField()
    expires_at = serializers.DateTimeField()
