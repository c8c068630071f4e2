"""Declarative viewsets. Writes go through services; scoping is ScopedViewSet's job."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api import serializers as s
from accounts.api.base import ScopedViewSet
from accounts.api.filters import (
    ActivityFilter,
    MembershipFilter,
    RoleFilter,
    SiteFilter,
    SiteRoleFilter,
    TokenFilter,
)
from accounts.authz import has_perm
from accounts.errors import ApplicationError, Forbidden
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
)
from accounts.permissions import AUTHENTICATED, CATALOG
from accounts.selectors import activity_csv_rows, me_summary
from accounts.services import members, orgs, roles, tokens


class OrganizationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, ScopedViewSet
):
    queryset = Organization.objects.all()
    serializer_class = s.OrganizationSerializer
    permissions = {"list": AUTHENTICATED, "retrieve": AUTHENTICATED, "update": "org:manage"}
    http_method_names = ["get", "patch", "put", "head", "options"]

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = orgs.org_update(
            actor=self.actor(),
            org=cast(Organization, serializer.instance),
            name=serializer.validated_data.get("name"),
        )


class SiteViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    queryset = Site.objects.select_related("org")
    permissions = {
        "list": "site:read",
        "retrieve": "site:read",
        "create": "site:manage",
        "update": "site:manage",
        "destroy": "site:manage",
    }
    filterset_class = SiteFilter

    serializer_class = s.SiteSerializer
    update_serializer_class = s.SiteUpdateSerializer

    def perform_create(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        self.require("site:manage", data["org"].pk)
        serializer.instance = orgs.site_create(
            actor=self.actor(),
            org=data["org"],
            name=data["name"],
            slug=data.get("slug"),
            location=data.get("location", ""),
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = orgs.site_update(
            actor=self.actor(),
            site=cast(Site, serializer.instance),
            name=data.get("name"),
            location=data.get("location"),
        )

    def perform_destroy(self, instance: Site) -> None:
        orgs.site_delete(actor=self.actor(), site=instance)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = User.objects.all()
    serializer_class = s.UserSerializer
    permissions = {"list": "user:read", "retrieve": "user:read"}
    filterset_fields = ["is_active"]


class MembershipViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Members of organizations. Creating one invites the person (a one-time set-password link)."""

    queryset = Membership.objects.select_related("user", "role")
    serializer_class = s.MembershipSerializer
    permissions = {
        "list": "user:read",
        "retrieve": "user:read",
        "create": "user:manage",
        "partial_update": "user:manage",
        "destroy": "user:manage",
    }
    filterset_class = MembershipFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=s.InviteSerializer, responses={201: s.InviteResultSerializer})
    def create(self, request: Request) -> Response:
        form = s.InviteSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        org = form.validated_data["org"]
        self.require("user:manage", org.pk)
        invitation = members.member_invite(
            actor=self.actor(),
            org=org,
            email=form.validated_data["email"],
            role=roles.role_for_org(org=org, slug=form.validated_data["role"]),
            full_name=form.validated_data["full_name"],
        )
        data = dict(s.MembershipSerializer(invitation.membership).data)
        data["created_user"] = invitation.created_user
        data["set_password_url"] = (
            request.build_absolute_uri(invitation.set_password_path)
            if invitation.set_password_path
            else None
        )
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MembershipUpdateSerializer, responses={200: s.MembershipSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        form = s.MembershipUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        role = roles.role_for_org(org=membership.org, slug=form.validated_data["role"])
        membership = members.membership_update(actor=self.actor(), membership=membership, role=role)
        return Response(s.MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        members.membership_remove(actor=self.actor(), membership=instance)


class SiteRoleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Site-level roles: they replace the member's org role at that site."""

    queryset = SiteRoleAssignment.objects.select_related("user", "role", "site")
    serializer_class = s.SiteRoleSerializer
    permissions = {
        "list": "user:read",
        "retrieve": "user:read",
        "create": "user:manage",
        "destroy": "user:manage",
    }
    filterset_class = SiteRoleFilter

    def perform_create(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        site: Site = data["site"]
        self.require("user:manage", site.org_id, site.pk)
        if not Membership.objects.filter(user=data["user"], org_id=site.org_id).exists():
            raise ApplicationError(
                "Only members of the site's organization can get a site role.", field="user"
            )
        serializer.instance = members.site_role_assign(
            actor=self.actor(),
            site=site,
            user=data["user"],
            role=roles.role_for_org(org=site.org, slug=data["role"]["slug"]),
        )

    def perform_destroy(self, instance: SiteRoleAssignment) -> None:
        members.site_role_remove(actor=self.actor(), assignment=instance)


class RoleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Built-in roles (read-only, no org) and each org's custom roles."""

    queryset = Role.objects.all()
    permissions = {
        "list": "user:read",
        "retrieve": "user:read",
        "create": "role:manage",
        "update": "role:manage",
        "destroy": "role:manage",
    }
    filterset_class = RoleFilter

    serializer_class = s.RoleSerializer
    update_serializer_class = s.RoleUpdateSerializer

    def dangerously_check_object(self, obj: Role, perm: str) -> None:
        """Built-in roles have no org; writes to them are refused by the service with a 400."""
        if obj.org_id is not None and not has_perm(self.request.user, perm, obj.org_id):
            raise Forbidden(perm)
        if obj.org_id is None and not any(
            has_perm(self.request.user, perm, org_id) for org_id in _member_orgs(self.request.user)
        ):
            raise Forbidden(perm)

    def perform_create(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        self.require("role:manage", data["org"].pk)
        serializer.instance = roles.role_create(
            actor=self.actor(),
            org=data["org"],
            name=data["name"],
            permissions=data["permissions"],
            description=data.get("description", ""),
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = roles.role_update(
            actor=self.actor(),
            role=cast(Role, serializer.instance),
            name=data.get("name"),
            permissions=data.get("permissions"),
            description=data.get("description"),
        )

    def perform_destroy(self, instance: Role) -> None:
        roles.role_delete(actor=self.actor(), role=instance)


def _member_orgs(user: Any) -> set[int]:
    from accounts.models import grants_for

    return grants_for(user).member_orgs()


class PermissionCatalogViewSet(ScopedViewSet):
    """The permission catalog, for building role editors."""

    permissions = {"list": AUTHENTICATED}
    pagination_class = None
    filter_backends = ()  # not a queryset: nothing to filter

    @extend_schema(responses={200: s.PermissionSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response([{"name": name, "description": text} for name, text in CATALOG.items()])


class TokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Personal API tokens. The secret is returned once, on create; DELETE revokes."""

    queryset = ApiToken.objects.select_related("user")
    serializer_class = s.TokenSerializer
    permissions = {
        "list": AUTHENTICATED,
        "retrieve": AUTHENTICATED,
        "create": AUTHENTICATED,
        "destroy": "apikey:manage",
    }
    filterset_class = TokenFilter

    def dangerously_check_object(self, obj: ApiToken, perm: str) -> None:
        """Your own token you may always revoke; others' need apikey:manage in one of their orgs."""
        if obj.user_id == self.request.user.pk:
            return
        owner_orgs = set(
            Membership.objects.filter(user_id=obj.user_id).values_list("org_id", flat=True)
        )
        if not any(has_perm(self.request.user, perm, org_id) for org_id in owner_orgs):
            raise Forbidden(perm)

    @extend_schema(responses={201: s.TokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        form = s.TokenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        issued = tokens.api_token_create(
            actor=self.actor(),
            user=cast(User, request.user),
            name=form.validated_data["name"],
            expires_at=form.validated_data.get("expires_at"),
        )
        data = dict(s.TokenSerializer(issued.token).data)
        data["token"] = issued.secret
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        tokens.api_token_revoke(actor=self.actor(), token=instance)


class ActivityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ActivityEvent.objects.all()
    serializer_class = s.ActivitySerializer
    permissions = {"list": "activity:read", "retrieve": "activity:read", "export": "activity:read"}
    filterset_class = ActivityFilter

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(description="CSV of the filtered events")}
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> Any:
        from django.http import StreamingHttpResponse

        queryset: QuerySet[ActivityEvent] = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(activity_csv_rows(queryset), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="activity.csv"'
        return response


class MeViewSet(ScopedViewSet):
    """Who am I: my memberships, site roles and effective permissions."""

    permissions = {"list": AUTHENTICATED}
    pagination_class = None
    filter_backends = ()  # not a queryset: nothing to filter

    @extend_schema(responses={200: s.MeSerializer})
    def list(self, request: Request) -> Response:
        return Response(s.MeSerializer(me_summary(request.user)).data)  # type: ignore[arg-type]
