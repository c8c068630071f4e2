from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site
from accounts.models.scoping import Grants, grants_for, org_site_filter
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
    ``interval_s`` seconds) so a thousand reboots don't trip a site's breakers.

    Scoped by its items' sites, not by its org alone: a job is reached with a permission
    where the caller holds it at one of its items' sites (``JobItem.scope_filter``), so a site
    role that hides a site hides the jobs that act only there, and a site-only role shows the
    jobs at that site."""

    scope_org = "org"

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """One of its items reached (``JobItem.scope_filter``); a job without items (none at
        any site) is the org's: seen with the permission org-wide."""
        reached = JobItem.objects.filter(JobItem.scope_filter(grants, permission))
        itemless = ~Exists(JobItem.objects.filter(job_id=OuterRef("pk")))
        return Q(pk__in=reached.values("job_id")) | (
            Q(itemless) & Q(org__in=grants.orgs_with(permission))
        )

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

    def site_ids(self, *, pending_only: bool = False) -> set[int | None]:
        """The sites its items act at (``JobItem.scope_filter``'s site of an item; ``None`` for
        an item whose site and miner are gone): those still pending with ``pending_only``."""
        items = JobItem.objects.filter(job_id=self.pk)
        if pending_only:
            items = items.filter(status=ItemStatus.PENDING)
        at = Coalesce("site_id", "miner__site_id")
        return set(items.annotate(at=at).order_by().values_list("at", flat=True).distinct())

    def scope_ids(self) -> tuple[int | None, int | None]:
        """(org, site) for permission checks and refusal records: the site when it acts at
        one only."""
        sites = self.site_ids()
        return self.org_id, next(iter(sites)) if len(sites) == 1 else None


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

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """The items ``grants`` reach with ``permission``, by the item's site: ``site`` (where
        it was acted on), else (rows from before items carried one) its miner's site; an item
        with neither (its site and miner deleted since) only with the permission org-wide."""
        return (
            Q(site__isnull=False) & org_site_filter(grants, permission, "job__org", "site")
            | Q(site__isnull=True, miner__isnull=False)
            & org_site_filter(grants, permission, "job__org", "miner__site")
            | Q(site__isnull=True, miner__isnull=True, job__org__in=grants.orgs_with(permission))
        )

    @classmethod
    def visible_to(cls, user: Any, permission: str) -> Q:
        """``scope_filter`` for ``user`` (every item for a superuser, none signed out)."""
        grants = grants_for(user)
        if grants.superuser:
            return Q()
        if grants.user_id is None:
            return Q(pk__in=[])
        return cls.scope_filter(grants, permission)
