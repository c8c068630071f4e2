from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.base import StrictInput, scoped_related
from accounts.models import Site
from fleet.api.serializers import UTC_FIELD_MAPPING
from fleet.netguard import DIALABLE_HELP
from terminals.models import AuthMethod, Recording, SessionState, SshHost, TerminalSession
from terminals.services.sessions import MAX_COLS, MAX_ROWS, TERM_TYPES

SECRET_MAX = 16_384


class SshHostSerializer(serializers.ModelSerializer[SshHost]):
    """An SSH target. Its password or private key is write-only: ``has_secret`` says one is
    stored. ``key_changed``: the host showed another key; sessions are refused until someone
    with terminal:manage re-trusts it (``presented_fingerprint``)."""

    serializer_field_mapping = UTC_FIELD_MAPPING
    site = scoped_related(Site, "site:read")(read_only=True)
    auth_method = serializers.ChoiceField(choices=AuthMethod.choices, read_only=True)
    has_secret = serializers.SerializerMethodField()
    key_changed = serializers.BooleanField(read_only=True)

    class Meta:
        model = SshHost
        fields = [
            "id",
            "name",
            "site",
            "address",
            "port",
            "username",
            "auth_method",
            "has_secret",
            "jump_host",
            "miner",
            "host_key_fingerprint",
            "host_key_trusted_at",
            "key_changed",
            "presented_fingerprint",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_secret(self, host: SshHost) -> bool:
        return host.secret is not None


def _secret_field(required: bool) -> serializers.CharField:
    return serializers.CharField(
        max_length=SECRET_MAX,
        required=required,
        write_only=True,
        trim_whitespace=False,
        help_text="The password, or an unencrypted OpenSSH/PEM private key; stored encrypted, "
        "never returned.",
    )


class SshHostCreateSerializer(StrictInput):
    site = scoped_related(Site, "site:read")()
    name = serializers.CharField(max_length=120)
    address = serializers.IPAddressField(help_text=DIALABLE_HELP)
    port = serializers.IntegerField(min_value=1, max_value=65535, default=22)
    username = serializers.CharField(max_length=64)
    auth_method = serializers.ChoiceField(choices=AuthMethod.choices)
    secret = _secret_field(required=True)
    jump_host = scoped_related(SshHost, "terminal:open")(required=False, allow_null=True)


class SshHostUpdateSerializer(StrictInput):
    name = serializers.CharField(max_length=120, required=False)
    address = serializers.IPAddressField(required=False, help_text=DIALABLE_HELP)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    username = serializers.CharField(max_length=64, required=False)
    auth_method = serializers.ChoiceField(choices=AuthMethod.choices, required=False)
    secret = _secret_field(required=False)
    jump_host = scoped_related(SshHost, "terminal:open")(required=False, allow_null=True)


class TerminalSessionSerializer(serializers.ModelSerializer[TerminalSession]):
    """A terminal session of yours. Attach to it at ``ws_url`` (docs/terminals.md)."""

    serializer_field_mapping = UTC_FIELD_MAPPING
    state = serializers.ChoiceField(choices=SessionState.choices, read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    ws_url = serializers.SerializerMethodField()
    recording = serializers.SerializerMethodField()

    class Meta:
        model = TerminalSession
        fields = [
            "id",
            "host",
            "host_name",
            "site",
            "state",
            "cols",
            "rows",
            "term",
            "started_at",
            "ended_at",
            "end_reason",
            "bytes_in",
            "bytes_out",
            "recording",
            "ws_url",
        ]
        read_only_fields = fields

    def get_ws_url(self, session: TerminalSession) -> str:
        path = f"/ws/terminals/{session.pk}/"
        request = self.context.get("request")
        if request is None:
            return path
        scheme = "wss" if request.is_secure() else "ws"
        return f"{scheme}://{request.get_host()}{path}"

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_recording(self, session: TerminalSession) -> int | None:
        try:
            return int(session.recording.pk)
        except Recording.DoesNotExist:
            return None


class TerminalSessionCreateSerializer(StrictInput):
    host = scoped_related(SshHost, "terminal:open")()
    cols = serializers.IntegerField(min_value=1, max_value=MAX_COLS, default=80)
    rows = serializers.IntegerField(min_value=1, max_value=MAX_ROWS, default=24)
    term = serializers.ChoiceField(choices=sorted(TERM_TYPES), default="xterm-256color")


class RecordingSerializer(serializers.ModelSerializer[Recording]):
    serializer_field_mapping = UTC_FIELD_MAPPING
    host = serializers.IntegerField(source="session.host_id", read_only=True)
    host_name = serializers.CharField(source="session.host.name", read_only=True)
    owner = serializers.CharField(source="session.owner.email", read_only=True)

    class Meta:
        model = Recording
        fields = [
            "id",
            "session",
            "site",
            "host",
            "host_name",
            "owner",
            "with_input",
            "size",
            "duration",
            "started_at",
            "ended_at",
        ]
        read_only_fields = fields


def payload(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: data[name] for name in names if name in data}
