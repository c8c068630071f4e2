from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site
from fleet.models.miners import Miner


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


class Job(ScopedModel):
    """One action on one or many miners, run in staggered batches (``batch_size`` miners every
    ``interval_s`` seconds) so a thousand reboots don't trip a site's breakers."""

    scope_org = "org"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=30)
    params = models.JSONField(default=dict)  # secrets (pool passwords) masked: see sealed_params
    sealed_params = models.BinaryField(null=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    batch_size = models.PositiveIntegerField(default=10)
    interval_s = models.FloatField(default=5.0)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} × {self.total}"

    @property
    def secret_label(self) -> str:
        return f"fleet.job:{self.pk}:params"


class JobItem(models.Model):
    """One miner's part of a job, with its result. ``site`` is where the item was acted on:
    an item whose miner is gone (or never came: a device that failed to pair) is shown to
    those who may read miners there."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    miner = models.ForeignKey(Miner, on_delete=models.SET_NULL, null=True, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.SET_NULL, null=True, related_name="+")
    miner_name = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    error = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["job_id", "id"]

    def __str__(self) -> str:
        return f"{self.miner_name}: {self.status}"
