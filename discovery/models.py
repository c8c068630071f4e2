"""Discovery runs and the devices they find.

Every limit the guardrails and the node-report checks enforce is the size of the column it
protects (``discovery.limits``), so a value that passes validation always fits.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site
from discovery import limits


class Via(models.TextChoices):
    CLOUD = "cloud", "The server"
    NODE = "node", "A fleet node"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    PARTIAL = "partial", "Partial"
    BUSY = "busy", "Node busy, retry shortly"
    TIMEOUT = "timeout", "Timed out"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


class DiscoveryRun(ScopedModel):
    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    via = models.CharField(max_length=5, choices=Via.choices, default=Via.CLOUD)
    node = models.ForeignKey(
        "fleet.FleetNode", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    command_id = models.UUIDField(null=True, blank=True, unique=True)
    targets = models.JSONField(default=list)  # as typed (each ≤ limits.TARGET_CHARS)
    addresses = models.JSONField(default=list)  # expanded and checked: the scope
    ports = models.JSONField(default=list)
    expanded_count = models.PositiveIntegerField(default=0)  # addresses after expansion
    total = models.PositiveIntegerField(default=0)  # address x port probes
    probed = models.PositiveIntegerField(default=0)
    found = models.PositiveIntegerField(default=0)
    new = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    rejected = models.JSONField(default=dict)  # {reason: count}
    batch_seq = models.PositiveBigIntegerField(default=0)  # highest node batch ingested
    status = models.CharField(max_length=7, choices=RunStatus.choices, default=RunStatus.QUEUED)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)
    error = models.CharField(max_length=limits.ERROR_CHARS, blank=True)
    scheduled = models.BooleanField(default=False)  # started by the rediscovery schedule
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["org", "-created_at"], name="discoveryrun_org_recent"),
            models.Index(fields=["status", "deadline_at"], name="discoveryrun_open"),
        ]

    def __str__(self) -> str:
        return f"discovery run {self.pk} ({self.via})"


class DiscoveredDevice(ScopedModel):
    """One device as discovery knows it: the identity row rescans update (``mac:`` →
    ``serial:`` → ``auto:``), who found it (``node`` empty: the server), its pairing."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(DiscoveryRun, on_delete=models.SET_NULL, null=True, related_name="+")
    identifier = models.CharField(max_length=limits.IDENTIFIER_CHARS)
    host = models.GenericIPAddressField()
    port = models.PositiveIntegerField()
    scheme = models.CharField(max_length=limits.SCHEME_CHARS, blank=True)
    driver = models.CharField(max_length=limits.DRIVER_CHARS)
    make = models.CharField(max_length=limits.MAKE_CHARS, blank=True)
    model = models.CharField(max_length=limits.MODEL_CHARS, blank=True)
    firmware = models.CharField(max_length=limits.FIRMWARE_CHARS, blank=True)
    mac = models.CharField(max_length=limits.MAC_CHARS, blank=True)
    serial = models.CharField(max_length=limits.SERIAL_CHARS, blank=True)
    node = models.ForeignKey(
        "fleet.FleetNode", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    miner = models.ForeignKey(
        "fleet.Miner", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    pair_outcome = models.CharField(max_length=16, blank=True)
    pair_error = models.CharField(max_length=limits.ERROR_CHARS, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host", "port", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "identifier"], name="discovereddevice_identifier_unique"
            )
        ]
        indexes = [models.Index(fields=["run", "host"], name="discovereddevice_run")]

    def __str__(self) -> str:
        return f"{self.driver} {self.host}:{self.port}"


class SavedRange(ScopedModel):
    """A site's ranges, rescanned on a schedule (``discovery.housekeeping``): it follows DHCP
    address changes of paired miners and flags new devices (the run's ``new``)."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    node = models.ForeignKey(
        "fleet.FleetNode", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=limits.NAME_CHARS)
    targets = models.JSONField(default=list)
    ports = models.JSONField(default=list)
    interval_minutes = models.PositiveIntegerField(default=15)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_run = models.ForeignKey(
        DiscoveryRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "name", "id"]

    def __str__(self) -> str:
        return self.name
