from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models.org import Organization
from accounts.models.scoping import Grants, ScopedModel


class ApiToken(ScopedModel):
    """A personal API token bound to one organization. Only a SHA-256 of the secret is stored;
    the prefix identifies it.

    It authenticates as its owner *in its organization only*, so it never holds more than the
    owner holds there now, and nothing in their other organizations.
    """

    scope_org = "org"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """Your own tokens in the orgs you (still) belong to, plus every token of an org where
        you hold ``permission`` (``apikey:manage``)."""
        own = Q(user_id=grants.user_id, org__in=grants.member_orgs())
        return own | Q(org__in=grants.orgs_with(permission))

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"
