"""Terminals API: SSH hosts, your terminal sessions and the recordings. Thin: services write,
ScopedViewSet scopes (sessions and recordings are further narrowed to their owner, or to
anyone with terminal:manage at the site for recordings)."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet
from accounts.errors import ApplicationError
from terminals.api import serializers as s
from terminals.models import Recording, SshHost, TerminalSession
from terminals.selectors import narrow_recordings, own_sessions
from terminals.services import hosts, recordings, sessions


class SshHostViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """SSH hosts of your sites. Seen with terminal:open; added, edited, removed and re-trusted
    with terminal:manage. The secret is write-only."""

    queryset = SshHost.unscoped.all()
    serializer_class = s.SshHostSerializer
    permissions = {
        "list": "terminal:open",
        "retrieve": "terminal:open",
        "create": "terminal:manage",
        "partial_update": "terminal:manage",
        "destroy": "terminal:manage",
        "retrust": "terminal:manage",
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=s.SshHostCreateSerializer, responses={201: s.SshHostSerializer})
    def create(self, request: Request) -> Response:
        form = s.SshHostCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        host = hosts.host_add(
            actor=self.actor(),
            site=data["site"],
            name=data["name"],
            address=data["address"],
            port=data["port"],
            username=data["username"],
            auth_method=data["auth_method"],
            secret=data["secret"],
            jump_host=data.get("jump_host"),
        )
        return Response(s.SshHostSerializer(host).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.SshHostUpdateSerializer, responses={200: s.SshHostSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        host = cast(SshHost, self.get_object())
        form = s.SshHostUpdateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        host = hosts.host_update(
            actor=self.actor(),
            host=host,
            **s.payload(data, "name", "address", "port", "username", "auth_method", "secret"),
            jump_host=data.get("jump_host"),
            clear_jump_host="jump_host" in data and data["jump_host"] is None,
        )
        return Response(s.SshHostSerializer(host).data)

    def perform_destroy(self, instance: SshHost) -> None:
        hosts.host_delete(actor=self.actor(), host=instance)

    @extend_schema(request=None, responses={200: s.SshHostSerializer})
    @action(detail=True, methods=["post"])
    def retrust(self, request: Request, pk: str | None = None) -> Response:
        """Trust the key the host now presents instead of the pinned one (audited)."""
        host = hosts.host_retrust(actor=self.actor(), host=cast(SshHost, self.get_object()))
        return Response(s.SshHostSerializer(host).data)


class TerminalSessionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Your terminal sessions. POST opens one (the SSH connection starts when you attach at
    ``ws_url``); DELETE ends it."""

    queryset = TerminalSession.unscoped.select_related("host", "recording")
    serializer_class = s.TerminalSessionSerializer
    permissions = {
        "list": "terminal:open",
        "retrieve": "terminal:open",
        "create": "terminal:open",
        "destroy": "terminal:open",
    }
    http_method_names = ["get", "post", "delete", "head", "options"]

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return own_sessions(super().filter_queryset(queryset), self.request.user)

    @extend_schema(
        request=s.TerminalSessionCreateSerializer, responses={201: s.TerminalSessionSerializer}
    )
    def create(self, request: Request) -> Response:
        form = s.TerminalSessionCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        row = sessions.session_open(
            actor=self.actor(),
            host=data["host"],
            cols=data["cols"],
            rows=data["rows"],
            term=data["term"],
        )
        body = s.TerminalSessionSerializer(row, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: TerminalSession) -> None:
        sessions.session_close_request(actor=self.actor(), session=instance)


class RecordingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Session recordings (asciinema v2): your own, and every recording at the sites where you
    hold terminal:manage."""

    queryset = Recording.unscoped.select_related("session__host", "session__owner")
    serializer_class = s.RecordingSerializer
    permissions = {
        "list": "terminal:open",
        "retrieve": "terminal:open",
        "download": "terminal:open",
    }

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return narrow_recordings(super().filter_queryset(queryset), self.request.user)

    @extend_schema(
        responses={
            (200, "application/x-asciicast"): OpenApiResponse(
                description="The recording as an asciinema v2 .cast file"
            )
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        recording = cast(Recording, self.get_object())
        path = recordings.recording_file(recording)
        if not path.exists():
            raise ApplicationError("The recording's file is gone.", field="recording")
        response = FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"session-{recording.session_id}.cast",
            content_type="application/x-asciicast",
        )
        return response
