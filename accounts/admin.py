"""Django admin: a read-only window on the data, scoped by restrict() (superusers see all).

Every change goes through the services, so the admin offers no add/change/delete forms — only
actions that call a service (revoke tokens and invitations, remove members), each authorized
and audited there. Filters list only what the rows in scope refer to, never other orgs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Invitation,
    InvitationStatus,
    LoginEvent,
    Membership,
    Organization,
    RestrictedQuerySet,
    Role,
    Site,
    SiteRoleAssignment,
    TrackedSession,
    User,
    grants_for,
)
from accounts.services.invitations import invitation_revoke
from accounts.services.members import membership_remove
from accounts.services.tokens import api_token_revoke


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


class ReadOnlyMixin:
    """No forms: writes are services, reached through the app, the API or an admin action."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScopedAdmin(ReadOnlyMixin, CatalogViewMixin, admin.ModelAdmin[Any]):
    """Applies the one scoping path; ``scope_permission`` is what a staff member needs to see rows."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = cast(RestrictedQuerySet[Any], super().get_queryset(request))
        return queryset.restrict(request.user, self.scope_permission)


def in_scope(field: str) -> tuple[str, type[admin.RelatedOnlyFieldListFilter]]:
    """A related filter listing only what the visible rows point at (no other orgs' names)."""
    return (field, admin.RelatedOnlyFieldListFilter)


def _run(request: HttpRequest, modeladmin: admin.ModelAdmin[Any], calls: Any) -> None:
    """Run service calls, one per row; refusals become admin messages, not 500s."""
    from django.contrib import messages

    done = 0
    for call in calls:
        try:
            call()
        except Refusal as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"Done for {done}.", messages.SUCCESS)


@admin.register(User)
class UserAdmin(ReadOnlyMixin, CatalogViewMixin, DjangoUserAdmin[Any]):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "last_login", "date_joined"]
    list_filter = ["is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email",)}),
        ("Profile", {"fields": ("full_name",)}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = fieldsets

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
    list_filter = [in_scope("org")]
    search_fields = ["name", "slug", "location"]
    list_select_related = ["org"]


@admin.register(Role)
class RoleAdmin(ScopedAdmin):
    list_display = ["name", "slug", "org", "is_builtin", "created_at"]
    list_filter = ["is_builtin", in_scope("org")]
    search_fields = ["name", "slug"]


@admin.action(description="Remove selected members (their site roles and tokens go too)")
def remove_members(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Membership]
) -> None:
    actor = Actor.for_request(request)
    _run(
        request,
        modeladmin,
        [
            partial(membership_remove, actor=actor, membership=m)
            for m in queryset.select_related("role", "user")
        ],
    )


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = [in_scope("org"), in_scope("role")]
    search_fields = ["user__email", "org__name"]
    list_select_related = ["user", "org", "role"]
    actions = [remove_members]


@admin.register(SiteRoleAssignment)
class SiteRoleAssignmentAdmin(ScopedAdmin):
    list_display = ["user", "site", "role", "created_at"]
    list_filter = [in_scope("site"), in_scope("role")]
    search_fields = ["user__email", "site__name"]
    list_select_related = ["user", "site", "role"]


@admin.action(description="Revoke selected tokens")
def revoke_tokens(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[ApiToken]
) -> None:
    actor = Actor.for_request(request)
    tokens = queryset.filter(revoked_at__isnull=True).select_related("user")
    _run(request, modeladmin, [partial(api_token_revoke, actor=actor, token=t) for t in tokens])


@admin.register(ApiToken)
class ApiTokenAdmin(ScopedAdmin):
    scope_permission = "apikey:manage"  # plus everyone's own tokens (ApiToken.scope_filter)
    list_display = [
        "name",
        "prefix",
        "org",
        "user",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [in_scope("org"), "revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__email"]
    fields = [
        "name",
        "org",
        "user",
        "prefix",
        "expires_at",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    ]
    actions = [revoke_tokens]
    list_select_related = ["user", "org"]


@admin.action(description="Revoke selected invitations")
def revoke_invitations(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Invitation]
) -> None:
    actor = Actor.for_request(request)
    pending = queryset.filter(status=InvitationStatus.PENDING)
    _run(
        request,
        modeladmin,
        [partial(invitation_revoke, actor=actor, invitation=i) for i in pending],
    )


@admin.register(Invitation)
class InvitationAdmin(ScopedAdmin):
    scope_permission = "user:read"
    list_display = ["email", "org", "role", "status", "sent_at", "expires_at"]
    list_filter = [in_scope("org"), "status"]
    search_fields = ["email"]
    exclude = ["token_hash"]
    list_select_related = ["org", "role"]
    actions = [revoke_invitations]


@admin.register(ActivityEvent)
class ActivityEventAdmin(ScopedAdmin):
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
    list_filter = ["result", "actor_type", in_scope("org")]
    search_fields = ["actor_label", "verb", "target_label", "target_id"]
    date_hierarchy = "created_at"
    list_select_related = ["org", "site"]


@admin.register(LoginEvent)
class LoginEventAdmin(ReadOnlyMixin, CatalogViewMixin, admin.ModelAdmin[Any]):
    scope_permission = "user:manage"  # other members' IPs and browsers
    list_display = ["created_at", "email", "result", "method", "sso_issuer", "ip", "user_agent"]
    list_filter = ["result", "method"]
    search_fields = ["email", "ip", "sso_subject"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = User.objects.restrict(request.user, self.scope_permission)
        return LoginEvent.objects.filter(user__in=visible)


@admin.register(TrackedSession)
class TrackedSessionAdmin(ReadOnlyMixin, CatalogViewMixin, admin.ModelAdmin[Any]):
    scope_permission = "user:manage"
    list_display = ["user", "ip", "user_agent", "created_at", "last_seen_at"]
    search_fields = ["user__email", "ip"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return TrackedSession.objects.filter(
            user__in=User.objects.restrict(request.user, self.scope_permission)
        )


from accounts.sso import admin as _sso_admin  # noqa: E402, F401  (registers the SSO models)
