"""Single sign-on: who a provider's subject is here, and how an org maps claims to roles."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models.org import Organization, Role, Site
from accounts.models.scoping import Grants, ScopedModel


class SsoIdentity(models.Model):
    """One (issuer, subject) pair: the identity key of an SSO login. Never the e-mail alone."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["issuer", "subject", "id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique"),
            models.UniqueConstraint(fields=["user", "issuer"], name="sso_identity_one_per_issuer"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.issuer}"


class SsoRoleMapping(ScopedModel):
    """A claim value that grants a role in the org (org-wide, or at one site) at every SSO login.

    ``claim`` is a dotted path into the provider's claims (``groups``, ``realm_access.roles``);
    it matches when the value there equals ``value`` or is a list containing it. The lowest
    ``priority`` wins when several rules give the org-wide role (or a role at the same site).
    """

    scope_org = "org"
    scope_site = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sso_mappings")
    claim = models.CharField(max_length=200)
    value = models.CharField(max_length=200)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="sso_mappings")
    site = models.ForeignKey(
        Site, on_delete=models.CASCADE, null=True, blank=True, related_name="sso_mappings"
    )
    priority = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "claim", "value", "site"],
                name="sso_mapping_unique_site",
                condition=Q(site__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["org", "claim", "value"],
                name="sso_mapping_unique_org",
                condition=Q(site__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        where = f" at {self.site}" if self.site_id else ""
        return f"{self.claim} = {self.value} → {self.role}{where}"

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """Org-wide rules (a member list is org-wide) to whoever holds ``permission`` there."""
        return Q(org__in=grants.orgs_with(permission))


class SsoSeatLimit(ScopedModel):
    """The licence of an org: at most ``seats`` members, enforced when SSO provisions one."""

    scope_org = "org"

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="sso_seats")
    seats = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.org}: {self.seats} seats"
