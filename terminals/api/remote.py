"""Remote commands API: the allowlisted catalog, and a run of one command on many SSH hosts.
Thin: the serializer checks shapes and scopes host ids (an id you can't see is a 400 like an
unknown one), ``terminals.services.remote`` validates arguments, authorizes and audits."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet, StrictInput, scoped_related
from accounts.errors import Forbidden
from accounts.models import grants_for
from terminals import remote
from terminals.models import SshHost
from terminals.services.remote import RemoteRun, remote_run


class RemoteParamSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["integer", "choice", "hostname", "text"])
    help = serializers.CharField()
    optional = serializers.BooleanField(help_text="Left out, it takes its default")
    default = serializers.JSONField(allow_null=True)
    minimum = serializers.IntegerField(required=False)
    maximum = serializers.IntegerField(required=False)
    max_length = serializers.IntegerField(required=False)
    options = serializers.ListField(child=serializers.CharField(), required=False)


class RemoteCommandSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    title = serializers.CharField()
    changes_state = serializers.BooleanField()
    params = RemoteParamSerializer(many=True)


class RemoteRunInput(StrictInput):
    hosts = scoped_related(SshHost, "terminal:open")(many=True, allow_empty=False)
    command = serializers.ChoiceField(choices=sorted(remote.COMMANDS))
    args = serializers.DictField(required=False, default=dict, help_text="The command's arguments")

    def validate_hosts(self, value: list[SshHost]) -> list[SshHost]:
        if len(value) > remote.MAX_HOSTS:
            raise serializers.ValidationError(f"At most {remote.MAX_HOSTS} hosts per run.")
        return value


class RemoteRunInputSchema(OpenApiSerializerExtension):
    """``hosts``: one to ``MAX_HOSTS`` ids (DRF's many-related field says neither)."""

    target_class = RemoteRunInput

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        schema["properties"]["hosts"] |= {"minItems": 1, "maxItems": remote.MAX_HOSTS}
        return schema


class RemoteHostResultSerializer(serializers.Serializer[Any]):
    host = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["ok", "failed", "error", "refused"],
        help_text="ok: exit 0 · failed: another exit status · error: no connection or a "
        "timeout · refused: the host key changed",
    )
    exit_status = serializers.IntegerField(allow_null=True)
    output = serializers.CharField(help_text="stdout and stderr merged, at most 64 KiB")
    truncated = serializers.BooleanField()
    error = serializers.CharField()
    seconds = serializers.FloatField()


class RemoteRunSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="The run id in the activity log")
    command = serializers.CharField()
    args = serializers.DictField()
    line = serializers.CharField(help_text="The command line that ran, arguments quoted")
    results = RemoteHostResultSerializer(many=True)


def _param(name: str, spec: remote.Spec) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "kind": spec.kind,
        "help": spec.help,
        "optional": spec.default is not None,
        "default": spec.default,
    }
    if isinstance(spec, remote.Integer):
        row |= {"minimum": spec.minimum, "maximum": spec.maximum}
    elif isinstance(spec, remote.Text):
        row["max_length"] = spec.max_length
    elif isinstance(spec, remote.Choice):
        row["options"] = sorted(spec.options)
    return row


def _catalog() -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "title": c.label,
            "changes_state": c.changes_state,
            "params": [_param(n, p) for n, p in c.params.items()],
        }
        for c in remote.COMMANDS.values()
    ]


def _result(run: RemoteRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "args": run.args,
        "line": run.line,
        "results": [
            {
                "host": r.host.pk,
                "name": r.host.name,
                "status": r.outcome.status,
                "exit_status": r.outcome.exit_status,
                "output": r.text,
                "truncated": r.outcome.truncated,
                "error": r.outcome.error,
                "seconds": r.outcome.seconds,
            }
            for r in run.results
        ],
    }


class RemoteCommandViewSet(ScopedViewSet):
    """Allowlisted remote commands (fetch logs, restart the mining service, …) run over SSH on
    many hosts at once: ``terminal:open`` at every host's site. Each run is audited: one
    ``terminal.remote_run`` event and one ``terminal.remote_host`` event per host."""

    queryset = SshHost.unscoped.all()
    permissions = {"list": "terminal:open", "run": "terminal:open"}
    pagination_class = None  # the catalog is a short fixed list

    @extend_schema(responses={200: RemoteCommandSerializer(many=True)})
    def list(self, request: Request) -> Response:
        if not grants_for(request.user).any_org_with("terminal:open"):
            raise Forbidden("terminal:open")
        return Response(RemoteCommandSerializer(_catalog(), many=True).data)

    @extend_schema(request=RemoteRunInput, responses={200: RemoteRunSerializer})
    @action(detail=False, methods=["post"])
    def run(self, request: Request) -> Response:
        """Run one command on the hosts; answers when every host has finished (or timed out)."""
        form = RemoteRunInput(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        run = remote_run(
            actor=self.actor(), hosts=data["hosts"], command=data["command"], args=data["args"]
        )
        return Response(RemoteRunSerializer(_result(run)).data)
