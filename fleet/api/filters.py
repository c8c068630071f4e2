from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from accounts.api.filters import visible
from accounts.models import Site
from fleet.api.pagination import stable_ordering
from fleet.models import Miner, MinerHealth


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
