from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from accounts.api.filters import visible
from accounts.models import Site
from fleet.api.pagination import stable_ordering
from fleet.models import Job, JobItem, JobStatus, Miner, MinerHealth


class StableOrdering(django_filters.OrderingFilter):
    """Any column, then the id: pages never shuffle rows that tie. Miners without figures (no
    poll yet) come last whichever way a column is sorted."""

    def filter(self, qs: QuerySet[Miner], value: list[str] | None) -> QuerySet[Miner]:
        ordered: QuerySet[Miner] = super().filter(qs, value)
        return stable_ordering(ordered) if value else ordered


class MinerFilter(django_filters.FilterSet):
    site = django_filters.ModelChoiceFilter(queryset=visible(Site, "site:read"))
    health = django_filters.ChoiceFilter(choices=MinerHealth.choices)
    model = django_filters.CharFilter(lookup_expr="iexact")
    firmware = django_filters.CharFilter(lookup_expr="iexact")
    driver = django_filters.CharFilter()
    search = django_filters.CharFilter(method="filter_search", label="Name, host, serial or MAC")
    ordering = StableOrdering(
        fields=(
            ("name", "name"),
            ("host", "host"),
            ("site__name", "site"),
            ("model", "model"),
            ("firmware", "firmware"),
            ("health", "health"),
            ("created_at", "created_at"),
            ("latest__hashrate_ths", "hashrate_ths"),
            ("latest__power_w", "power_w"),
            ("latest__efficiency_jth", "efficiency_jth"),
            ("latest__max_temp_c", "max_temp_c"),
            ("latest__updated_at", "updated_at"),
        )
    )

    class Meta:
        model = Miner
        fields = ["site", "health", "model", "firmware", "driver"]

    def filter_search(self, queryset: QuerySet[Miner], name: str, value: str) -> QuerySet[Miner]:
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(host__startswith=value)
            | Q(serial__icontains=value)
            | Q(mac__icontains=value)
            | Q(hostname__icontains=value)
        )


def _job_kinds() -> list[tuple[str, str]]:
    from fleet.forms import action_label
    from fleet.services.jobs import job_kinds

    return [(kind, action_label(kind)) for kind in job_kinds()]


class JobFilter(django_filters.FilterSet):
    """The job list's filters, for ``GET /api/v1/jobs/`` and the ``/jobs/`` page: ``site``
    among the sites where the caller reads miners (a job at several sites matches each)."""

    status = django_filters.ChoiceFilter(choices=JobStatus.choices, empty_label="Any status")
    kind = django_filters.ChoiceFilter(
        choices=_job_kinds,
        empty_label="Any kind",
        help_text="An action (reboot, blink, start_mining, stop_mining, set_power_target, "
        "set_pools, set_cooling) or another app's job kind (a pairing: discovery_pair).",
    )
    site = django_filters.ModelChoiceFilter(
        queryset=visible(Site, "miner:read"),
        method="filter_site",
        empty_label="Any site",
        help_text="A site id where you read miners: the jobs acting there.",
    )

    class Meta:
        model = Job
        fields = ["status", "kind", "site"]

    @extend_schema_field(OpenApiTypes.INT)
    def filter_site(self, queryset: QuerySet[Job], name: str, value: Site | None) -> QuerySet[Job]:
        if value is None:
            return queryset
        at = JobItem.objects.filter(Q(site=value) | Q(site__isnull=True, miner__site=value)).values(
            "job_id"
        )
        return queryset.filter(pk__in=at)
