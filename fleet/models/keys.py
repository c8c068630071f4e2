from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Organization


class DataKey(models.Model):
    """One organization's data key, wrapped by the master key (envelope encryption).

    Secrets of the org's objects are AES-256-GCM under the *active* data key; older versions
    stay until ``rotate_data_keys`` has re-encrypted everything under the new one. ``master_kid``
    names the master key that wraps it, so ``rotate_master_key`` knows what to re-wrap.
    """

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="data_keys")
    version = models.PositiveIntegerField()
    wrapped = models.BinaryField()
    master_kid = models.CharField(max_length=16)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["org", "version"], name="datakey_version_unique"),
            models.UniqueConstraint(
                fields=["org"], condition=models.Q(active=True), name="datakey_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"data key v{self.version} of org {self.org_id}"
