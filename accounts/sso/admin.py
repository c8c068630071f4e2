"""Admin for single sign-on: read-only and scoped like the rest (accounts/admin.py); the one
write, deleting rules, goes through the service."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.actor import Actor
from accounts.admin import CatalogViewMixin, ReadOnlyMixin, ScopedAdmin, _run, in_scope
from accounts.models import SsoIdentity, SsoRoleMapping, SsoSeatLimit, User
from accounts.sso.mappings import sso_mapping_delete


@admin.action(description="Delete selected rules (members lose what they gave at next sign-in)")
def delete_rules(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[SsoRoleMapping]
) -> None:
    actor = Actor.for_request(request)
    rules = queryset.select_related("role")
    _run(request, modeladmin, [partial(sso_mapping_delete, actor=actor, mapping=m) for m in rules])


@admin.register(SsoRoleMapping)
class SsoRoleMappingAdmin(ScopedAdmin):
    scope_permission = "user:read"
    list_display = ["org", "priority", "claim", "value", "role", "site", "created_at"]
    list_filter = [in_scope("org"), in_scope("role")]
    search_fields = ["claim", "value"]
    list_select_related = ["org", "role", "site"]
    actions = [delete_rules]


@admin.register(SsoSeatLimit)
class SsoSeatLimitAdmin(ScopedAdmin):
    scope_permission = "user:read"
    list_display = ["org", "seats", "updated_at"]


@admin.register(SsoIdentity)
class SsoIdentityAdmin(ReadOnlyMixin, CatalogViewMixin, admin.ModelAdmin[Any]):
    scope_permission = "user:manage"
    list_display = ["user", "issuer", "subject", "created_at", "last_login_at"]
    search_fields = ["user__email", "subject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = User.objects.restrict(request.user, self.scope_permission)
        return SsoIdentity.objects.filter(user__in=visible).select_related("user")
