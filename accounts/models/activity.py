from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models.org import Organization, Site
from accounts.models.scoping import ScopedModel


class ActorType(models.TextChoices):
    USER = "user", "User"
    NODE = "node", "Fleet node"
    SYSTEM = "system", "System"


class ActivityResult(models.TextChoices):
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    DENIED = "denied", "Denied"


class ActivityEvent(ScopedModel):
    """One state change by a person, a node or the system. Written only by ``activity_record``."""

    scope_org = "org"
    scope_site = "site"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    site = models.ForeignKey(
        Site, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verb = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    result = models.CharField(
        max_length=10, choices=ActivityResult.choices, default=ActivityResult.OK
    )
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "-created_at", "-id"], name="activity_org_time")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.verb} {self.target_label}".strip()
