"""The node gateway: enrollment and session endpoints a fleet node calls with its own proof.

No user session or API token here (``authentication_classes = []``, so no CSRF either): each
call carries its own proof — the enrollment code and a signature, the identity key's
signature, or the api key plus a signed challenge. Declared PUBLIC for the route walker,
throttled per client address like every anonymous call.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.actor import client_ip
from accounts.api.base import ScopedViewSet, no_store
from accounts.permissions import PUBLIC
from fleet.api import node_serializers as s
from fleet.models import FleetNode
from fleet.nodes import enrollment, sessions
from fleet.nodes.errors import NodeRefused

_REFUSED = OpenApiResponse(description="Refused: `detail` says why")


def _api_key(request: Request) -> str:
    parts = str(request.META.get("HTTP_AUTHORIZATION", "")).split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise NodeRefused(401, "Send the api key as 'Authorization: Bearer <api_key>'.")
    return parts[1]


class NodeGatewayViewSet(ScopedViewSet):
    """Enrollment and sessions of fleet nodes (docs/protocol.md)."""

    queryset = FleetNode.unscoped.none()
    authentication_classes: list[Any] = []
    permissions = {
        "register": PUBLIC,
        "credentials": PUBLIC,
        "session_begin": PUBLIC,
        "session_complete": PUBLIC,
    }
    pagination_class = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, NodeRefused):
            return Response({"detail": exc.message}, status=exc.status)
        return super().handle_exception(exc)

    @extend_schema(
        request=s.RegisterSerializer,
        responses={201: s.RegisteredSerializer},
        auth=[],
    )
    @action(detail=False, methods=["post"])
    def register(self, request: Request) -> Response:
        """Register with an enrollment code and a proof of the identity key (step 2)."""
        form = s.RegisterSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        node = enrollment.node_register(
            code=data["code"],
            name=data["name"],
            hostname=data["hostname"],
            agent_version=data["agent_version"],
            identity_key=data["identity_key"],
            proof=data["proof"],
            ip=client_ip(request),
        )
        body = {"node_id": node.pk, "fingerprint": node.fingerprint, "status": node.status}
        return Response(s.RegisteredSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.CredentialsSerializer,
        responses={
            200: s.ApiKeySerializer,
            401: _REFUSED,
            403: _REFUSED,
            409: _REFUSED,
            410: _REFUSED,
        },
        auth=[],
    )
    @action(detail=False, methods=["post"])
    def credentials(self, request: Request) -> Response:
        """The api key, exactly once, to a confirmed node (step 4)."""
        form = s.CredentialsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        api_key = enrollment.node_credentials_issue(
            node_id=data["node_id"], ts=data["ts"], sig=data["sig"], ip=client_ip(request)
        )
        return no_store(Response({"api_key": api_key}))

    @extend_schema(
        request=None,
        responses={200: s.ChallengeSerializer, 401: _REFUSED, 403: _REFUSED},
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="session/begin")
    def session_begin(self, request: Request) -> Response:
        """A fresh challenge (30 s, one use) for the node of this api key."""
        return no_store(Response({"challenge": sessions.session_begin(api_key=_api_key(request))}))

    @extend_schema(
        request=s.SessionCompleteSerializer,
        responses={200: s.SessionSerializer, 401: _REFUSED, 403: _REFUSED},
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="session/complete")
    def session_complete(self, request: Request) -> Response:
        """A session token (15 min) for the challenge signed by the identity key."""
        api_key = _api_key(request)
        form = s.SessionCompleteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token, expires = sessions.session_complete(
            api_key=api_key,
            challenge=form.validated_data["challenge"],
            sig=form.validated_data["sig"],
        )
        return no_store(Response({"session_token": token, "expires_at": expires}))
