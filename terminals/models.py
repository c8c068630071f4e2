"""SSH hosts of a site and the terminal sessions opened to them (rows for listing and audit;
the live session is an object in the process that owns it, see ``terminals.manager``)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    KEY = "key", "Private key"


class SshHost(ScopedModel):
    """An SSH target. The secret (password or private key) is write-only and envelope-encrypted
    (``fleet.crypto``); the host key is trusted on first use and pinned after."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="ssh_hosts")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="ssh_hosts")
    name = models.CharField(max_length=120)
    address = models.GenericIPAddressField()
    port = models.PositiveIntegerField(default=22)
    username = models.CharField(max_length=64)
    auth_method = models.CharField(max_length=10, choices=AuthMethod.choices)
    secret = models.BinaryField(null=True, blank=True, editable=False)
    # OpenSSH public key line ("ssh-ed25519 AAAA…") and its SHA256 fingerprint
    host_key = models.TextField(blank=True)
    host_key_fingerprint = models.CharField(max_length=100, blank=True)
    host_key_trusted_at = models.DateTimeField(null=True, blank=True)
    # a different key the host presented: sessions are refused until someone re-trusts
    presented_key = models.TextField(blank=True)
    presented_fingerprint = models.CharField(max_length=100, blank=True)
    miner = models.ForeignKey(
        "fleet.Miner", on_delete=models.SET_NULL, null=True, blank=True, related_name="ssh_hosts"
    )
    # reached through this host (``ssh -J``): another host of the same org
    jump_host = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="jumped"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "SSH host"
        ordering = ["org_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="sshhost_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def secret_label(self) -> str:
        return f"terminals.sshhost:{self.pk}:secret"

    @property
    def key_changed(self) -> bool:
        return bool(self.presented_key)


class SessionState(models.TextChoices):
    STARTING = "starting", "Starting"
    ATTACHED = "attached", "Attached"
    DETACHED = "detached", "Detached"
    CLOSED = "closed", "Closed"


OPEN_STATES = (SessionState.STARTING, SessionState.ATTACHED, SessionState.DETACHED)


class TerminalSession(ScopedModel):
    """One SSH session; only its owner attaches to it."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    host = models.ForeignKey(SshHost, on_delete=models.CASCADE, related_name="sessions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terminal_sessions"
    )
    state = models.CharField(
        max_length=10, choices=SessionState.choices, default=SessionState.STARTING
    )
    replica = models.CharField(max_length=120, blank=True)  # the process that holds it
    cols = models.PositiveIntegerField(default=80)
    rows = models.PositiveIntegerField(default=24)
    term = models.CharField(max_length=40, default="xterm-256color")
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    bytes_out = models.BigIntegerField(default=0)
    bytes_in = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["host", "state"], name="termsession_host_state"),
            models.Index(fields=["owner", "state"], name="termsession_owner_state"),
        ]

    def __str__(self) -> str:
        return f"{self.host.name} #{self.pk}"


class TerminalPolicy(models.Model):
    """An organization's terminal policy: whether sessions are recorded, whether keystrokes
    are too (off unless the org says so), and how long recordings are kept."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    record_sessions = models.BooleanField(default=True)
    record_input = models.BooleanField(default=False)
    retention_days = models.PositiveIntegerField(default=30)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"terminal policy of org {self.org_id}"


class Recording(ScopedModel):
    """The asciinema v2 recording of one session (a ``.cast`` file under
    ``DATA_DIR/recordings``): output and resizes, keystrokes only by org policy."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    session = models.OneToOneField(
        TerminalSession, on_delete=models.CASCADE, related_name="recording"
    )
    path = models.CharField(max_length=255)  # relative to the recordings directory
    with_input = models.BooleanField(default=False)
    size = models.BigIntegerField(default=0)
    duration = models.FloatField(default=0.0)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["org", "ended_at"], name="recording_org_ended")]

    def __str__(self) -> str:
        return f"recording of session {self.session_id}"
