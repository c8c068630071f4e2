from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models.scoping import Grants, ScopedModel


class Organization(ScopedModel):
    """The tenant. Every other object belongs to exactly one."""

    scope_org = "pk"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Site(ScopedModel):
    """A physical location of an org; site-level roles and (later) miners hang off it."""

    scope_org = "org"
    scope_site = "pk"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60)
    location = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "slug"], name="site_slug_unique_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class Role(ScopedModel):
    """A named set of catalog permissions. Built-ins have no org and can't be edited."""

    scope_org = "org"

    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="roles"
    )
    slug = models.SlugField(max_length=60)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    permissions = models.JSONField(default=list)
    is_builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-is_builtin", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "slug"], name="role_slug_unique_per_org"),
            models.UniqueConstraint(
                fields=["slug"], condition=Q(org__isnull=True), name="builtin_role_slug_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """Built-in roles are visible to every member; custom roles to their org."""
        builtin = Q(org__isnull=True) if grants.member_orgs() else Q(pk__in=[])
        return builtin | Q(org__in=grants.orgs_with(permission))


class Membership(ScopedModel):
    """A user's place in an org, with the org-wide role."""

    scope_org = "org"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "user__email", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "org"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} as {self.role}"


class SiteRoleAssignment(ScopedModel):
    """Replaces the member's org role at one site (narrower or wider)."""

    scope_org = "site__org"
    scope_site = "site"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_roles"
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="site_assignments")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["site_id", "user__email", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="site_role_unique")]

    def __str__(self) -> str:
        return f"{self.user} at {self.site} as {self.role}"
