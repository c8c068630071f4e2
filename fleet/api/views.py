"""Fleet API: declarative viewsets over the fleet services (scoping is ScopedViewSet's)."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet
from fleet.api import serializers as s
from fleet.api.filters import MinerFilter
from fleet.models import Miner
from fleet.services import miners


class MinerViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Miners. POST identifies the device at an address through the drivers and stores it;
    credentials are write-only."""

    queryset = Miner.unscoped.select_related("latest")
    serializer_class = s.MinerSerializer
    permissions = {
        "list": "miner:read",
        "retrieve": "miner:read",
        "create": "miner:pair",
        "partial_update": "miner:rename",
        "destroy": "miner:delete",
    }
    filterset_class = MinerFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=s.MinerCreateSerializer, responses={201: s.MinerSerializer})
    def create(self, request: Request) -> Response:
        form = s.MinerCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        miner = miners.miner_add(
            actor=self.actor(),
            site=data["site"],
            host=data["host"],
            port=data.get("port"),
            driver=data.get("driver"),
            username=data["username"],
            password=data.get("password"),
            name=data["name"],
        )
        return Response(s.MinerSerializer(miner).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MinerUpdateSerializer, responses={200: s.MinerSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        miner = cast(Miner, self.get_object())
        form = s.MinerUpdateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        actor = self.actor()
        if {"name", "tags", "rack", "position"} & set(data):
            miner = miners.miner_update(
                actor=actor,
                miner=miner,
                name=data.get("name"),
                tags=data.get("tags"),
                rack=data.get("rack"),
                position=data.get("position"),
            )
        if "site" in data:
            miner = miners.miner_move(actor=actor, miner=miner, site=data["site"])
        if "password" in data:
            miner = miners.miner_set_credentials(
                actor=actor,
                miner=miner,
                username=data.get("username", miner.username),
                password=data["password"],
            )
        return Response(s.MinerSerializer(miner).data)

    def perform_destroy(self, instance: Miner) -> None:
        miners.miner_delete(actor=self.actor(), miner=instance)
