from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.base import CurrentOrgDefault, StrictInput, scoped_related
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


# The bases of every serializer here: strict JSON types (see StrictInput). Comments, not
# docstrings: drf-spectacular would print a base's docstring as every schema's description.
class Serializer(StrictInput, serializers.Serializer[Any]):
    pass


class ModelSerializer(StrictInput, serializers.ModelSerializer[Any]):
    pass


def org_field() -> serializers.Field[Any, Any, Any, Any]:
    """The ``org`` of a create: one the caller can see; left out, the caller's only org."""
    return scoped_related(Organization, AUTHENTICATED)(default=CurrentOrgDefault())


class OrganizationSerializer(ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "slug", "created_at"]


class SiteSerializer(ModelSerializer):
    org = org_field()
    slug = serializers.SlugField(max_length=60, required=False)

    class Meta:
        model = Site
        fields = ["id", "org", "name", "slug", "location", "created_at"]
        read_only_fields = ["id", "created_at"]
        # The (org, slug) UniqueTogetherValidator would make the optional slug required;
        # site_create derives the slug from the name and reports a clash as a 400 itself.
        validators: list[Any] = []


class SiteUpdateSerializer(ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "org", "name", "slug", "location", "created_at"]
        read_only_fields = ["id", "org", "slug", "created_at"]


class UserSerializer(ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "is_active", "date_joined", "last_login"]
        read_only_fields = fields


class RoleSerializer(ModelSerializer):
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(CATALOG)), allow_empty=True
    )
    org = org_field()

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


class MembershipSerializer(ModelSerializer):
    user = UserSerializer(read_only=True)
    role: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Membership
        fields = ["id", "org", "user", "role", "created_at"]
        read_only_fields = fields


class InviteSerializer(Serializer):
    org = org_field()
    email = serializers.EmailField(max_length=254)
    role = serializers.SlugField()
    full_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)


class InvitationSerializer(ModelSerializer):
    """What the inviting org sees: what it typed, and where the invitation stands."""

    role: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    state = serializers.ChoiceField(
        choices=["pending", "expired", "accepted", "declined", "revoked"], read_only=True
    )
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "org",
            "email",
            "full_name",
            "role",
            "state",
            "invited_by",
            "created_at",
            "sent_at",
            "expires_at",
            "responded_at",
        ]
        read_only_fields = fields


class InvitationIssuedSerializer(InvitationSerializer):
    """The same answer whether or not the address already has an account."""

    accept_url = serializers.URLField(
        read_only=True, help_text="The invitee's link (also e-mailed). Shown once per (re)send."
    )
    email_sent = serializers.BooleanField(read_only=True)

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "accept_url", "email_sent"]
        read_only_fields = fields


class MyInvitationSerializer(ModelSerializer):
    """What the invitee sees of an invitation addressed to them."""

    org = OrganizationSerializer(read_only=True)
    role: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "org", "role", "invited_by", "sent_at", "expires_at"]
        read_only_fields = fields


class MembershipUpdateSerializer(Serializer):
    role = serializers.SlugField(required=False, help_text="Left out: nothing changes.")


class SiteRoleSerializer(ModelSerializer):
    site = scoped_related(Site, "site:read")()
    user = scoped_related(User, "user:read")()
    role = serializers.SlugField(source="role.slug")
    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = SiteRoleAssignment
        fields = ["id", "site", "user", "user_email", "role", "created_at"]
        read_only_fields = ["id", "user_email", "created_at"]


class TokenSerializer(ModelSerializer):
    # The one organization the token acts in; may be left out when you have one.
    org = org_field()
    state = serializers.CharField(read_only=True)
    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "org",
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
        read_only_fields = [f for f in fields if f not in ("org", "name", "expires_at")]


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class ActivitySerializer(ModelSerializer):
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


class PermissionSerializer(Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class MeMembershipSerializer(Serializer):
    org = OrganizationSerializer()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class MeSiteRoleSerializer(Serializer):
    site = serializers.IntegerField()
    org = serializers.IntegerField()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class MeSerializer(Serializer):
    user = UserSerializer()
    memberships = MeMembershipSerializer(many=True)
    site_roles = MeSiteRoleSerializer(many=True)
    mfa_enabled = serializers.BooleanField()
