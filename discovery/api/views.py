"""Discovery API (contracts.md "Discovery API"): declarative viewsets over the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet
from accounts.api.pagination import PageNumberPagination
from accounts.errors import ApplicationError
from discovery import pairing, schedule, services
from discovery.api import serializers as s
from discovery.models import DiscoveredDevice, DiscoveryRun, SavedRange
from discovery.selectors import with_visible_miner
from fleet.api.serializers import JobSerializer


class DiscoveryRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ScopedViewSet
):
    """Discovery runs: POST checks the targets (any refused one is a 400 naming it) and
    queues the scan, through a fleet node when ``node`` is given."""

    queryset = DiscoveryRun.unscoped.all()
    serializer_class = s.RunSerializer
    pagination_class = PageNumberPagination
    permissions = {"list": "discovery:run", "retrieve": "discovery:run", "create": "discovery:run"}

    @extend_schema(request=s.RunCreateSerializer, responses={201: s.RunSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = s.RunCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        run = services.run_create(
            actor=self.actor(),
            site=data["site"],
            target_list=data["targets"],
            ports=data.get("ports"),
            node=data.get("node"),
        )
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)


class DiscoveredDeviceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Devices discovery found (``?run=`` those the run saw; ``?new=true`` the unpaired).
    ``pair`` pairs a selection as a bulk job with a per-device outcome."""

    queryset = DiscoveredDevice.unscoped.all()
    serializer_class = s.DeviceSerializer
    pagination_class = PageNumberPagination
    permissions = {"list": "discovery:run", "retrieve": "discovery:run", "pair": "miner:pair"}

    def filter_queryset(self, queryset: Any) -> Any:
        queryset = with_visible_miner(queryset, self.request.user)
        if self.action != "list":
            return queryset
        query = s.DeviceQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data.get("run"):
            queryset = queryset.filter(run_id=query.validated_data["run"])
        if query.validated_data.get("new") is not None:
            queryset = queryset.filter(miner__isnull=query.validated_data["new"])
        return queryset

    @extend_schema(
        parameters=[s.DeviceQuerySerializer], responses={200: s.DeviceSerializer(many=True)}
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=s.PairSerializer, responses={202: JobSerializer})
    @action(detail=False, methods=["post"])
    def pair(self, request: Request) -> Response:
        form = s.PairSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        wanted = list(dict.fromkeys(data["devices"]))
        found = {d.pk: d for d in self.get_queryset().filter(pk__in=wanted)}
        missing = [pk for pk in wanted if pk not in found]
        if missing:
            raise ApplicationError(f"Unknown devices: {missing[:10]}.", field="devices")
        devices = [found[pk] for pk in wanted]
        orgs = {d.org_id for d in devices}
        if len(orgs) != 1:
            raise ApplicationError("Pick devices of one organization.", field="devices")
        runs = {d.run_id for d in devices}
        run_id = runs.pop() if len(runs) == 1 else None  # the run they came from, if one
        job = pairing.pairing_create(
            actor=self.actor(),
            org=devices[0].org,
            devices=devices,
            node=data.get("node"),
            username=data.get("username", ""),
            password=data.get("password"),
            run=DiscoveryRun.unscoped.filter(pk=run_id).first() if run_id else None,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class SavedRangeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Scheduled rediscovery: a site's ranges, rescanned every ``interval_minutes`` (saving
    checks them like a run: a refused target is a 400 naming it)."""

    queryset = SavedRange.unscoped.all()
    serializer_class = s.SavedRangeSerializer
    pagination_class = PageNumberPagination
    permissions = {
        "list": "discovery:run",
        "retrieve": "discovery:run",
        "create": "discovery:run",
        "destroy": "discovery:run",
    }

    @extend_schema(request=s.SavedRangeCreateSerializer, responses={201: s.SavedRangeSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = s.SavedRangeCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        saved = schedule.saved_range_create(
            actor=self.actor(),
            site=data["site"],
            name=data["name"],
            target_list=data["targets"],
            ports=data.get("ports"),
            node=data.get("node"),
            interval_minutes=data["interval_minutes"],
        )
        return Response(s.SavedRangeSerializer(saved).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: SavedRange) -> None:
        schedule.saved_range_delete(actor=self.actor(), saved=instance)
