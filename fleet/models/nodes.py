"""Fleet nodes: on-site agents that keep one outbound control stream and dial miners for us.

Secrets are never stored in the clear: enrollment codes, api keys, challenges and session
tokens are SHA-256 hashes of ≥ 256-bit random values (looked up by hash); the per-node data
key and the org's command-signing private keys are envelope-encrypted (``fleet.crypto``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site

UNCONFIRMED_TTL = dt.timedelta(hours=24)
ENROLLMENT_CODE_TTL = dt.timedelta(hours=1)


def _unconfirmed_expiry() -> dt.datetime:
    return timezone.now() + UNCONFIRMED_TTL


class NodeStatus(models.TextChoices):
    AWAITING = "awaiting_confirmation", "Awaiting confirmation"
    CONFIRMED = "confirmed", "Confirmed"
    REVOKED = "revoked", "Revoked"


class FleetNode(ScopedModel):
    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"
    # not stored: the assignment version the node's hello named, on the row the hello attached
    rw_assignment_version: str | None = None

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="fleet_nodes")
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="fleet_nodes"
    )
    name = models.CharField(max_length=120)
    hostname = models.CharField(max_length=255, blank=True)
    agent_version = models.CharField(max_length=40, blank=True)
    identity_key = models.BinaryField(max_length=32, unique=True)  # Ed25519 public, raw
    fingerprint = models.CharField(max_length=16, db_index=True)
    encryption_key = models.BinaryField(max_length=32, null=True, blank=True)  # X25519 public
    status = models.CharField(
        max_length=24, choices=NodeStatus.choices, default=NodeStatus.AWAITING
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_unconfirmed_expiry)  # only while unconfirmed
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    api_key_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    api_key_issued_at = models.DateTimeField(null=True, blank=True)
    # the live control stream (empty when none)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    channel_name = models.CharField(max_length=200, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    replica = models.CharField(max_length=120, blank=True)
    health = models.JSONField(default=dict, blank=True)
    dropped_events = models.PositiveBigIntegerField(default=0)
    rejected_reports = models.PositiveBigIntegerField(default=0)  # untrusted input dropped
    telemetry_seq = models.PositiveBigIntegerField(default=0)  # highest batch_seq stored
    seq_hwm = models.JSONField(default=dict, blank=True)  # {kid: seq} as the node reported
    # the per-node data key (wraps its miners' credentials), envelope-encrypted
    sealed_data_key = models.BinaryField(null=True, blank=True, editable=False)
    data_key_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["org_id", "name", "id"]
        indexes = [models.Index(fields=["org", "status"], name="fleetnode_org_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def managed_by(self) -> str:
        """The ``Miner.managed_by`` value of the miners this node owns."""
        return f"node:{self.pk}"

    @property
    def data_key_label(self) -> str:
        return f"fleet.node:{self.pk}:data_key"


class EnrollmentCode(ScopedModel):
    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(
        Site, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    code_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    node = models.ForeignKey(
        FleetNode, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"enrollment code {self.pk} of org {self.org_id}"


class NodeChallenge(ScopedModel):
    """A session challenge: 32 random bytes, 30 s, one use."""

    scope_org = "node__org"

    node = models.ForeignKey(FleetNode, on_delete=models.CASCADE, related_name="+")
    challenge_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-expires_at", "-id"]


class NodeSession(ScopedModel):
    """A control-stream session token (15 min), minted only by a signed challenge."""

    scope_org = "node__org"

    node = models.ForeignKey(FleetNode, on_delete=models.CASCADE, related_name="sessions")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class CommandKey(ScopedModel):
    """An org's Ed25519 command-signing key. ``next_seq`` is the per-key sequence: taken and
    incremented under a row lock, so two issuers never sign the same ``seq``."""

    scope_org = "org"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="command_keys")
    kid = models.CharField(max_length=32, unique=True)
    public_key = models.BinaryField(max_length=32)
    sealed_private = models.BinaryField(editable=False)
    active = models.BooleanField(default=True)
    next_seq = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["org_id", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=models.Q(active=True), name="commandkey_one_active"
            )
        ]

    def __str__(self) -> str:
        return self.kid

    @property
    def private_label(self) -> str:
        return f"fleet.commandkey:{self.kid}:private"


class CommandStatus(models.TextChoices):
    SENT = "sent", "Sent"
    ACCEPTED = "accepted", "Accepted"
    OK = "ok", "OK"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    BUSY = "busy", "Busy"
    TIMEOUT = "timeout", "Timed out"


FINAL_COMMAND_STATUSES = frozenset(
    {
        CommandStatus.OK,
        CommandStatus.PARTIAL,
        CommandStatus.FAILED,
        CommandStatus.REJECTED,
        CommandStatus.BUSY,
        CommandStatus.TIMEOUT,
    }
)


class NodeCommand(ScopedModel):
    """A signed command sent to a node and what became of it. ``payload`` is stored with its
    secrets left out (sealed keys and credentials are only ever on the wire)."""

    scope_org = "org"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    node = models.ForeignKey(FleetNode, on_delete=models.CASCADE, related_name="commands")
    command_id = models.UUIDField(default=uuid.uuid4, unique=True)
    kid = models.CharField(max_length=32)
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    actor_label = models.CharField(max_length=200)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=CommandStatus.choices, default="sent")
    result = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    job_item = models.ForeignKey(
        "fleet.JobItem", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kid", "seq"], name="nodecommand_kid_seq_unique")
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="nodecommand_open")]

    def __str__(self) -> str:
        return f"{self.kind} → node {self.node_id} (seq {self.seq})"
