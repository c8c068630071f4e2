"""Fleet API: declarative viewsets over the fleet services (scoping is ScopedViewSet's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.db.models import QuerySet
from django.http import QueryDict, StreamingHttpResponse
from drf_spectacular.helpers import forced_singular_serializer
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import ScopedViewSet
from accounts.models import Organization
from fleet.actions import ACTIONS
from fleet.api import serializers as s
from fleet.api.filters import JobFilter, MinerFilter
from fleet.api.pagination import CursorPageNumberPagination
from fleet.models import Job, Miner
from fleet.selectors import fleet_summary, miners_csv_rows, samples_series, with_params_shown
from fleet.services import jobs, miners


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
        "samples": "miner:read",
        "logs": "miner:download_logs",
        "export": "miner:export_csv",
        **{f"action_{kind}": a.permission for kind, a in ACTIONS.items()},
    }
    filterset_class = MinerFilter
    pagination_class = CursorPageNumberPagination
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

    @extend_schema(parameters=[s.SamplesQuerySerializer], responses={200: s.SamplesSerializer})
    @action(detail=True, methods=["get"])
    def samples(self, request: Request, pk: str | None = None) -> Response:
        """Hashrate, power and temperature over time, averaged per ``step`` seconds."""
        miner = cast(Miner, self.get_object())
        query = s.SamplesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        series = samples_series(
            miner,
            start=query.validated_data.get("from"),
            end=query.validated_data.get("to"),
            step=query.validated_data.get("step"),
        )
        return Response(s.SamplesSerializer(series).data)

    @extend_schema(parameters=[s.LogsQuerySerializer], responses={200: s.LogsSerializer})
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """The rig's own log, read now (audited)."""
        miner = cast(Miner, self.get_object())
        query = s.LogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        content = miners.miner_logs(
            actor=self.actor(),
            miner=miner,
            lines=query.validated_data["lines"],
            source=query.validated_data.get("source"),
        )
        return Response({"lines": content})

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(description="The filtered miners as CSV")}
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        """The miner list as CSV, with the same filters and ordering as the list."""
        queryset = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(miners_csv_rows(queryset), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="miners.csv"'
        return response

    def run_action(self, kind: str, request: Request) -> Response:
        miner = cast(Miner, self.get_object())
        job = jobs.job_create(
            actor=self.actor(),
            org=miner.org,
            kind=kind,
            params=request.data.dict() if isinstance(request.data, QueryDict) else request.data,
            miners=[miner],
            single=True,
        )
        shown = s.JobSerializer(job, context=self.get_serializer_context()).data
        return Response({"job": shown}, status=status.HTTP_202_ACCEPTED)


def _action_endpoint(kind: str) -> Callable[..., Response]:
    body = s.ACTION_BODIES[kind]

    def endpoint(self: MinerViewSet, request: Request, pk: str | None = None) -> Response:
        return self.run_action(kind, request)

    endpoint.__name__ = f"action_{kind}"
    endpoint.__doc__ = f"{kind.replace('_', ' ').capitalize()} this miner: a job of one (202)."
    decorated = action(
        detail=True, methods=["post"], url_path=f"actions/{kind}", url_name=f"action-{kind}"
    )(endpoint)
    return extend_schema(
        request=body, responses={202: s.JobAcceptedSerializer}, operation_id=f"miners_action_{kind}"
    )(decorated)


for _kind in ACTIONS:
    setattr(MinerViewSet, f"action_{_kind}", _action_endpoint(_kind))


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Bulk actions: one action on many miners, staggered, with per-miner results.

    A job is seen by those who read miners at one of its items' sites (``Job.scope_filter``),
    with the items they can see, and its ``params`` only if they see every item. Creating
    needs the action's own permission at every miner's site, cancelling it at every site of
    the remaining items (both checked by the service). ``/cancel`` is served with and without
    the trailing slash (the contract spells it without)."""

    queryset = Job.unscoped.all()
    serializer_class = s.JobSerializer
    pagination_class = CursorPageNumberPagination
    filterset_class = JobFilter
    permissions = {
        "list": "miner:read",
        "retrieve": "miner:read",
        "create": "miner:read",
        "cancel": "miner:read",
    }

    def get_serializer_class(self) -> type[Any]:
        return s.JobDetailSerializer if self.action == "retrieve" else s.JobSerializer

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return with_params_shown(super().filter_queryset(queryset), self.request.user)

    def dangerously_check_object(self, obj: Job, permission: str) -> None:
        """Cancel: the job came through the scoped queryset (``miner:read`` at one of its
        sites); the service checks the action's permission at every site it would stop."""

    @extend_schema(request=s.JobCreateSerializer, responses={202: s.JobSerializer})
    def create(self, request: Request) -> Response:
        form = s.JobCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        chosen = _selected_miners(request, data)
        org = _one_org(chosen)
        job = jobs.job_create(
            actor=self.actor(),
            org=org,
            kind=data["kind"],
            params=data["params"],
            miners=chosen,
            batch_size=data.get("batch_size"),
            interval_s=data.get("interval_s"),
        )
        shown = s.JobSerializer(job, context=self.get_serializer_context()).data
        return Response(shown, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Stop the job before its next batch (a pairing: its next device); miners already
        acted on stay acted on. Needs the job's permission (the action's own; a pairing's
        ``miner:pair``) at every site of its remaining items, else 403. Also served without
        the trailing slash."""
        job = jobs.job_cancel(actor=self.actor(), job=cast(Job, self.get_object()))
        return Response(s.JobSerializer(job, context=self.get_serializer_context()).data)


def _selected_miners(request: Request, data: dict[str, Any]) -> list[Miner]:
    from accounts.errors import ApplicationError

    visible = Miner.objects.restrict(request.user, "miner:read").select_related("site")
    if "miners" in data:
        wanted = set(data["miners"])
        found = list(visible.filter(pk__in=wanted))
        if len(found) != len(wanted):
            missing = sorted(wanted - {m.pk for m in found})[:10]
            raise ApplicationError(f"Unknown miners: {missing}.", field="miners")
        return found
    selection = {k: v.pk if hasattr(v, "pk") else v for k, v in data["filter"].items()}
    return list(MinerFilter(selection, queryset=visible, request=request).qs)


def _one_org(chosen: list[Miner]) -> Organization:
    from accounts.errors import ApplicationError

    orgs = {m.org_id for m in chosen}
    if len(orgs) > 1:
        raise ApplicationError("A job acts in one organization; choose its miners.", field="miners")
    if not chosen:
        raise ApplicationError("No miners match.", field="miners")
    return Organization.unscoped.get(pk=orgs.pop())


class FleetSummaryViewSet(ScopedViewSet):
    """Totals of the miners you can see (by health, hashrate, power, efficiency), overall and
    per site and model; ``?site=`` narrows it to one site."""

    queryset = Miner.unscoped.all()
    permissions = {"list": "fleet:read"}
    pagination_class = None
    filterset_class = MinerFilter

    @extend_schema(responses={200: forced_singular_serializer(s.FleetSummarySerializer)})
    def list(self, request: Request) -> Response:
        miners = self.filter_queryset(self.get_queryset())
        return Response(s.FleetSummarySerializer(fleet_summary(miners)).data)
