"""Declarative viewsets. Writes go through services; scoping is ScopedViewSet's job."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.helpers import forced_singular_serializer
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api import serializers as s
from accounts.api.base import ScopedViewSet, no_store
from accounts.api.filters import (
    ActivityFilter,
    InvitationFilter,
    MembershipFilter,
    RoleFilter,
    SiteFilter,
    SiteRoleFilter,
    TokenFilter,
)
from accounts.authz import has_perm
from accounts.errors import Forbidden
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Invitation,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
)
from accounts.permissions import AUTHENTICATED, CATALOG
from accounts.selectors import activity_csv_rows, me_summary, my_invitations
from accounts.services import invitations, members, orgs, roles, tokens


class OrganizationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, ScopedViewSet
):
    queryset = Organization.unscoped.all()
    serializer_class = s.OrganizationSerializer
    permissions = {"list": AUTHENTICATED, "retrieve": AUTHENTICATED, "update": "org:manage"}
    http_method_names = ["get", "patch", "put", "head", "options"]

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
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
    queryset = Site.unscoped.select_related("org")
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

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = serializer.validated_data
        serializer.instance = orgs.site_create(
            actor=self.actor(),
            org=data["org"],
            name=data["name"],
            slug=data.get("slug"),
            location=data.get("location", ""),
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
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
    """Members of organizations. Creating one sends an invitation (see ``/invitations/``): the
    person joins when they accept it."""

    queryset = Membership.unscoped.select_related("user", "role")
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

    @extend_schema(request=s.InviteSerializer, responses={201: s.InvitationIssuedSerializer})
    def create(self, request: Request) -> Response:
        return invite(self, request)

    @extend_schema(request=s.MembershipUpdateSerializer, responses={200: s.MembershipSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        form = s.MembershipUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        if "role" in form.validated_data:
            role = roles.role_for_org(org=membership.org, slug=form.validated_data["role"])
            membership = members.membership_update(
                actor=self.actor(), membership=membership, role=role
            )
        return Response(s.MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        members.membership_remove(actor=self.actor(), membership=instance)


def invite(view: ScopedViewSet, request: Request) -> Response:
    form = s.InviteSerializer(data=request.data, context=view.get_serializer_context())
    form.is_valid(raise_exception=True)
    org = form.validated_data["org"]
    issued = invitations.member_invite(
        actor=view.actor(),
        org=org,
        email=form.validated_data["email"],
        role=roles.role_for_org(org=org, slug=form.validated_data["role"]),
        full_name=form.validated_data["full_name"],
        base_url=request.build_absolute_uri("/"),
    )
    return _issued(issued, status.HTTP_201_CREATED)


def _issued(issued: invitations.IssuedInvitation, code: int) -> Response:
    data = dict(s.InvitationSerializer(issued.invitation).data)
    data |= {"accept_url": issued.accept_url, "email_sent": issued.email_sent}
    return no_store(Response(data, status=code))


class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Invitations an org has sent. DELETE revokes a pending one; ``resend`` mints a new link."""

    queryset = Invitation.unscoped.select_related("role", "invited_by")
    serializer_class = s.InvitationSerializer
    permissions = {
        "list": "user:read",
        "retrieve": "user:read",
        "create": "user:manage",
        "destroy": "user:manage",
        "resend": "user:manage",
    }
    filterset_class = InvitationFilter

    @extend_schema(request=s.InviteSerializer, responses={201: s.InvitationIssuedSerializer})
    def create(self, request: Request) -> Response:
        return invite(self, request)

    @extend_schema(request=None, responses={200: s.InvitationIssuedSerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str | None = None) -> Response:
        issued = invitations.invitation_resend(
            actor=self.actor(),
            invitation=self.get_object(),
            base_url=request.build_absolute_uri("/"),
        )
        return _issued(issued, status.HTTP_200_OK)

    def perform_destroy(self, instance: Invitation) -> None:
        invitations.invitation_revoke(actor=self.actor(), invitation=instance)


class MyInvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Pending invitations addressed to the signed-in person's e-mail: accept or decline."""

    queryset = Invitation.unscoped.none()  # for the schema; rows come from the hook below
    serializer_class = s.MyInvitationSerializer
    permissions = {
        "list": AUTHENTICATED,
        "retrieve": AUTHENTICATED,
        "accept": AUTHENTICATED,
        "decline": AUTHENTICATED,
    }
    filter_backends = ()  # a person's own few invitations

    def dangerously_get_queryset(self) -> QuerySet[Invitation]:
        """Addressed to the caller, not scoped by org: they aren't a member of it yet."""
        return my_invitations(cast(User, self.request.user))

    @extend_schema(request=None, responses={200: s.MembershipSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        membership = invitations.invitation_accept(actor=self.actor(), invitation=self.get_object())
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        invitations.invitation_decline(actor=self.actor(), invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SiteRoleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Site-level roles: they replace the member's org role at that site."""

    queryset = SiteRoleAssignment.unscoped.select_related("user", "role", "site")
    serializer_class = s.SiteRoleSerializer
    permissions = {
        "list": "user:read",
        "retrieve": "user:read",
        "create": "user:manage",
        "destroy": "user:manage",
    }
    filterset_class = SiteRoleFilter

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = serializer.validated_data
        site: Site = data["site"]
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

    queryset = Role.unscoped.all()
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

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = serializer.validated_data
        serializer.instance = roles.role_create(
            actor=self.actor(),
            org=data["org"],
            name=data["name"],
            permissions=data["permissions"],
            description=data.get("description", ""),
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
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

    queryset = ApiToken.unscoped.select_related("user", "org")
    serializer_class = s.TokenSerializer
    # Lists show your own tokens plus every token of the orgs where you hold apikey:manage.
    permissions = {
        "list": "apikey:manage",
        "retrieve": "apikey:manage",
        "create": AUTHENTICATED,
        "destroy": "apikey:manage",
    }
    filterset_class = TokenFilter

    def dangerously_check_object(self, obj: ApiToken, perm: str) -> None:
        """Revoking is decided by ``api_token_revoke``: your own, or apikey:manage in its org."""

    @extend_schema(responses={201: s.TokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        form = s.TokenSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        issued = tokens.api_token_create(
            actor=self.actor(),
            user=cast(User, request.user),
            name=form.validated_data["name"],
            org=form.validated_data.get("org"),
            expires_at=form.validated_data.get("expires_at"),
        )
        data = dict(s.TokenSerializer(issued.token).data)
        data["token"] = issued.secret
        return no_store(Response(data, status=status.HTTP_201_CREATED))

    def perform_destroy(self, instance: ApiToken) -> None:
        tokens.api_token_revoke(actor=self.actor(), token=instance)


class ActivityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ActivityEvent.unscoped.all()
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

    @extend_schema(responses={200: forced_singular_serializer(s.MeSerializer)})
    def list(self, request: Request) -> Response:
        return Response(s.MeSerializer(me_summary(request.user)).data)  # type: ignore[arg-type]
