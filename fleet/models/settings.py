from __future__ import annotations

from typing import ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel

POLL_INTERVAL_MIN = 2
POLL_INTERVAL_MAX = 3600


class FleetSettings(ScopedModel):
    """Org-wide fleet settings. No row means the deployment's defaults
    (``FLEET_POLL_INTERVAL``)."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = None

    org = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="fleet_settings"
    )
    poll_interval_s = models.PositiveIntegerField(
        validators=[MinValueValidator(POLL_INTERVAL_MIN), MaxValueValidator(POLL_INTERVAL_MAX)],
        help_text="Seconds between two polls of each miner of the org.",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id"]
        verbose_name_plural = "fleet settings"

    def __str__(self) -> str:
        return f"fleet settings of org {self.org_id}"
