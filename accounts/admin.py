"""Django admin: lists go through restrict() so staff see only their orgs (superusers see all)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.actor import Actor
from accounts.models import (
    ActivityEvent,
    ApiToken,
    LoginEvent,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    TrackedSession,
    User,
    grants_for,
)
from accounts.permissions import AUTHENTICATED
from accounts.services.activity import activity_record
from accounts.services.tokens import api_token_revoke


class AuditedAdminMixin:
    """Admin edits bypass the API, so they record their own activity events."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        verb = f"admin.{obj._meta.model_name}.{'change' if change else 'create'}"
        activity_record(
            actor=Actor.for_request(request),
            verb=verb,
            org=_org_of(obj),
            target=obj,
            details={"fields": sorted(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        activity_record(
            actor=Actor.for_request(request),
            verb=f"admin.{obj._meta.model_name}.delete",
            org=_org_of(obj),
            target=obj,
        )
        super().delete_model(request, obj)  # type: ignore[misc]


def _org_of(obj: Any) -> int | None:
    scope_ids = getattr(obj, "scope_ids", None)
    return scope_ids()[0] if scope_ids else None


class CatalogViewMixin:
    """Staff may *see* what the catalog lets them see (an org owner who is staff finds the admin
    populated, scoped to their orgs); adding, changing and deleting still need Django's model
    permissions, which only superusers hold unless an operator grants them."""

    scope_permission = "user:read"

    def _catalog_allows_view(self, request: HttpRequest) -> bool:
        user: Any = request.user
        return bool(
            user.is_active
            and user.is_staff
            and grants_for(user).any_org_with(self.scope_permission)
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self._catalog_allows_view(request)  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or self._catalog_allows_view(request)  # type: ignore[misc]


class ScopedAdmin(CatalogViewMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Applies the one scoping path; ``scope_permission`` is what a staff member needs to see rows."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).restrict(request.user, self.scope_permission)  # type: ignore[attr-defined]


class ReadOnlyAdmin(ScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["org"]
    fk_name = "user"


@admin.register(User)
class UserAdmin(CatalogViewMixin, AuditedAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff", "last_login", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser", "memberships__org"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["last_login", "date_joined"]
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return User.objects.restrict(request.user, "user:read")


@admin.register(Organization)
class OrganizationAdmin(ScopedAdmin):
    scope_permission = "authenticated"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Site)
class SiteAdmin(ScopedAdmin):
    scope_permission = "site:read"
    list_display = ["name", "slug", "org", "location", "created_at"]
    list_filter = ["org"]
    search_fields = ["name", "slug", "location"]
    list_select_related = ["org"]


@admin.register(Role)
class RoleAdmin(ScopedAdmin):
    list_display = ["name", "slug", "org", "is_builtin", "created_at"]
    list_filter = ["is_builtin", "org"]
    search_fields = ["name", "slug"]
    readonly_fields = ["is_builtin"]

    def has_change_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        return not (obj and obj.is_builtin) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        return not (obj and obj.is_builtin) and super().has_delete_permission(request, obj)


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["org", "role"]
    search_fields = ["user__email", "org__name"]
    list_select_related = ["user", "org", "role"]
    autocomplete_fields = ["user", "org"]


@admin.register(SiteRoleAssignment)
class SiteRoleAssignmentAdmin(ScopedAdmin):
    list_display = ["user", "site", "role", "created_at"]
    list_filter = ["site__org", "role"]
    search_fields = ["user__email", "site__name"]
    list_select_related = ["user", "site", "role"]


@admin.action(description="Revoke selected tokens")
def revoke_tokens(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiToken]
) -> None:
    actor = Actor.for_request(request)
    for token in queryset.filter(revoked_at__isnull=True):
        api_token_revoke(actor=actor, token=token)


@admin.register(ApiToken)
class ApiTokenAdmin(CatalogViewMixin, AuditedAdminMixin, admin.ModelAdmin):
    scope_permission = AUTHENTICATED  # everyone sees their own tokens
    list_display = [
        "name",
        "prefix",
        "user",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__email"]
    readonly_fields = [
        "user",
        "prefix",
        "token_hash",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    ]
    fields = [
        "name",
        "user",
        "prefix",
        "expires_at",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    ]
    actions = [revoke_tokens]
    list_select_related = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return ApiToken.objects.restrict(request.user, "apikey:manage").select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are created by their owner, who must see the secret once


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyAdmin):
    scope_permission = "activity:read"
    list_display = [
        "created_at",
        "actor_label",
        "verb",
        "target_type",
        "target_label",
        "result",
        "org",
        "site",
        "ip",
    ]
    list_filter = ["result", "actor_type", "verb", "org"]
    search_fields = ["actor_label", "verb", "target_label", "target_id"]
    date_hierarchy = "created_at"
    list_select_related = ["org", "site"]


@admin.register(LoginEvent)
class LoginEventAdmin(ReadOnlyAdmin):
    scope_permission = "user:manage"  # other members' IPs and browsers
    list_display = ["created_at", "email", "result", "method", "ip", "user_agent"]
    list_filter = ["result", "method"]
    search_fields = ["email", "ip"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = User.objects.restrict(request.user, self.scope_permission)
        return LoginEvent.objects.filter(user__in=visible)


@admin.register(TrackedSession)
class TrackedSessionAdmin(ReadOnlyAdmin):
    scope_permission = "user:manage"
    list_display = ["user", "ip", "user_agent", "created_at", "last_seen_at"]
    search_fields = ["user__email", "ip"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return TrackedSession.objects.filter(
            user__in=User.objects.restrict(request.user, self.scope_permission)
        )
