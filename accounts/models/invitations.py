from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models.org import Organization, Role
from accounts.models.scoping import ScopedModel

INVITATION_LIFETIME = timedelta(days=7)


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"


def _expiry() -> object:
    return timezone.now() + INVITATION_LIFETIME


class Invitation(ScopedModel):
    """An offer of a role in an org, made to an e-mail address.

    It grants nothing until the person behind the address accepts it: an existing account
    accepts while signed in; a new address sets its password on the invitation page. Only a
    SHA-256 of the link's secret is stored; re-sending mints a new link.
    """

    scope_org = "org"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    full_name = models.CharField(max_length=150, blank=True)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="invitations")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=10, choices=InvitationStatus.choices, default=InvitationStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_expiry)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "email"],
                condition=Q(status="pending"),
                name="invitation_pending_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.org}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_open(self) -> bool:
        return self.status == InvitationStatus.PENDING and not self.is_expired

    @property
    def state(self) -> str:
        """``pending``/``expired``/``accepted``/``declined``/``revoked``, as people read it."""
        if self.status == InvitationStatus.PENDING and self.is_expired:
            return "expired"
        return str(self.status)
