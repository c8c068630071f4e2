"""FilterSets shared by the API and the pages (one definition of each filter), and the API's
stricter way of applying them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import Model, QuerySet
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from accounts.models import (
    ActivityEvent,
    ActivityResult,
    ActorType,
    ApiToken,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
)
from accounts.permissions import AUTHENTICATED


def visible(model: type[Model], permission: str) -> Callable[[Any], QuerySet[Any]]:
    """Choices for an id filter: only what the caller can see, so another org's id is the same
    400 as an id that doesn't exist (no probing which ids exist elsewhere)."""

    def choices(request: Any) -> QuerySet[Any]:
        manager: Any = model._default_manager
        shown: QuerySet[Any] = (
            manager.none() if request is None else manager.all().restrict(request.user, permission)
        )
        return shown

    return choices


class _UtcIsoDateTimeField(IsoDateTimeField):
    """PostgreSQL refuses UTC offsets past ±15:59 that Python accepts (``+17:16`` was a 500),
    so the value is compared in UTC; one that UTC can't hold (year 1 at +05:00) is a 400."""

    def to_python(self, value: Any) -> datetime | None:
        parsed: datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError(
                "Enter a date and time between the years 1 and 9999."
            ) from exc


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


def _org() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(queryset=visible(Organization, AUTHENTICATED))


def _site() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(queryset=visible(Site, "site:read"))


def _user() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(queryset=visible(User, "user:read"))


class SiteFilter(django_filters.FilterSet):
    org = _org()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = Site
        fields = ["org", "slug"]


class MembershipFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        field_name="user__email", lookup_expr="icontains", label="E-mail contains"
    )
    role = django_filters.CharFilter(field_name="role__slug")
    org = _org()
    user = _user()

    class Meta:
        model = Membership
        fields = ["org", "user"]


class TokenFilter(django_filters.FilterSet):
    org = _org()
    user = _user()
    mine = django_filters.BooleanFilter(method="filter_mine", label="Only my tokens")

    class Meta:
        model = ApiToken
        fields = ["org", "user"]

    def filter_mine(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.filter(user_id=self.request.user.pk) if value else queryset


class InvitationFilter(django_filters.FilterSet):
    org = _org()
    status = django_filters.ChoiceFilter(choices=InvitationStatus.choices)
    q = django_filters.CharFilter(
        field_name="email", lookup_expr="icontains", label="E-mail contains"
    )

    class Meta:
        model = Invitation
        fields = ["org", "status"]


class ActivityFilter(django_filters.FilterSet):
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
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
    org = _org()
    site = _site()

    class Meta:
        model = ActivityEvent
        fields = ["org", "site", "target_type"]


class SiteRoleFilter(django_filters.FilterSet):
    site = _site()
    user = _user()

    class Meta:
        model = SiteRoleAssignment
        fields = ["site", "user"]


class RoleFilter(django_filters.FilterSet):
    org = _org()

    class Meta:
        model = Role
        fields = ["org", "is_builtin"]


class StrictFilterBackend(DjangoFilterBackend):
    """An API filter that is given must hold a value of its type.

    The pages submit their filter forms with "Any" as an empty value, so the shared FilterSets
    read ``?actor_type=`` or ``?mine=maybe`` as "no filter". An API client that sends them has
    made a mistake the schema doesn't allow (an enum, an id, a boolean, a date-time): a 400
    naming the parameter, not every row. Text filters (``q``, ``verb``…) may be empty.
    """

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        blank = {
            name: ["Enter a valid value, or leave the parameter out."]
            for name, field in filterset.form.fields.items()
            if name in request.query_params
            and not isinstance(field, forms.CharField)
            and filterset.form.cleaned_data.get(name) in (None, "")
        }
        if blank:
            raise ValidationError(blank)
        filtered: QuerySet[Any] = filterset.qs
        return filtered
