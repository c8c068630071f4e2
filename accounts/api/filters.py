"""FilterSets shared by the API and the pages (one definition of each filter)."""

from __future__ import annotations

import django_filters

from accounts.models import ActivityEvent, ActivityResult, ActorType, ApiToken, Membership, Site


class SiteFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = Site
        fields = ["org", "slug"]


class MembershipFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        field_name="user__email", lookup_expr="icontains", label="E-mail contains"
    )
    role = django_filters.CharFilter(field_name="role__slug")

    class Meta:
        model = Membership
        fields = ["org", "user"]


class TokenFilter(django_filters.FilterSet):
    mine = django_filters.BooleanFilter(method="filter_mine", label="Only my tokens")

    class Meta:
        model = ApiToken
        fields = ["user"]

    def filter_mine(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.filter(user_id=self.request.user.pk) if value else queryset


class ActivityFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    verb = django_filters.CharFilter(
        field_name="verb", lookup_expr="istartswith", label="Verb starts with"
    )
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="icontains", label="Actor contains"
    )
    target = django_filters.CharFilter(
        field_name="target_label", lookup_expr="icontains", label="Target contains"
    )
    actor_type = django_filters.ChoiceFilter(choices=ActorType.choices)
    result = django_filters.ChoiceFilter(choices=ActivityResult.choices)

    class Meta:
        model = ActivityEvent
        fields = ["org", "site", "target_type"]
