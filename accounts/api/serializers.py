from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.base import scoped_related
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


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "slug", "created_at"]


class SiteSerializer(serializers.ModelSerializer):
    org = scoped_related(Organization, AUTHENTICATED)()
    slug = serializers.SlugField(max_length=60, required=False)

    class Meta:
        model = Site
        fields = ["id", "org", "name", "slug", "location", "created_at"]
        read_only_fields = ["id", "created_at"]
        # The (org, slug) UniqueTogetherValidator would make the optional slug required;
        # site_create derives the slug from the name and reports a clash as a 400 itself.
        validators: list[Any] = []


class SiteUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "org", "name", "slug", "location", "created_at"]
        read_only_fields = ["id", "org", "slug", "created_at"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "is_active", "date_joined", "last_login"]
        read_only_fields = fields


class RoleSerializer(serializers.ModelSerializer):
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(CATALOG)), allow_empty=True
    )
    org = scoped_related(Organization, AUTHENTICATED)(required=True)

    class Meta:
        model = Role
        fields = [
            "id",
            "org",
            "slug",
            "name",
            "description",
            "permissions",
            "is_builtin",
            "created_at",
        ]
        read_only_fields = ["id", "slug", "is_builtin", "created_at"]


class RoleUpdateSerializer(RoleSerializer):
    org = serializers.PrimaryKeyRelatedField(read_only=True)
    name = serializers.CharField(max_length=80, required=False)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(CATALOG)), allow_empty=True, required=False
    )


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)
    role: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Membership
        fields = ["id", "org", "user", "role", "created_at"]
        read_only_fields = fields


class InviteSerializer(serializers.Serializer):
    org = scoped_related(Organization, AUTHENTICATED)()
    email = serializers.EmailField(max_length=254)
    role = serializers.SlugField()
    full_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)


class InviteResultSerializer(MembershipSerializer):
    set_password_url = serializers.CharField(read_only=True, allow_null=True)
    created_user = serializers.BooleanField(read_only=True)

    class Meta(MembershipSerializer.Meta):
        fields = [*MembershipSerializer.Meta.fields, "set_password_url", "created_user"]
        read_only_fields = fields


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.SlugField()


class SiteRoleSerializer(serializers.ModelSerializer):
    site = scoped_related(Site, "site:read")()
    user = scoped_related(User, "user:read")()
    role = serializers.SlugField(source="role.slug")
    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = SiteRoleAssignment
        fields = ["id", "site", "user", "user_email", "role", "created_at"]
        read_only_fields = ["id", "user_email", "created_at"]


class TokenSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True)
    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "user_email",
            "state",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "expires_at")]


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class ActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ActivityEvent
        fields = [
            "id",
            "created_at",
            "actor_type",
            "actor_label",
            "actor_user",
            "org",
            "site",
            "verb",
            "target_type",
            "target_id",
            "target_label",
            "result",
            "details",
            "ip",
        ]
        read_only_fields = fields


class PermissionSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class MeMembershipSerializer(serializers.Serializer):
    org = OrganizationSerializer()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class MeSiteRoleSerializer(serializers.Serializer):
    site = serializers.IntegerField()
    org = serializers.IntegerField()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class MeSerializer(serializers.Serializer):
    user = UserSerializer()
    memberships = MeMembershipSerializer(many=True)
    site_roles = MeSiteRoleSerializer(many=True)
    mfa_enabled = serializers.BooleanField()
