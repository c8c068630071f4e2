from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from accounts.models import Organization, ScopedModel, Site
from miners import EMBEDDED_VIEW_DRIVERS, DeviceInfo


class MinerHealth(models.TextChoices):
    OK = "ok", "OK"
    DEGRADED = "degraded", "Degraded"
    OFFLINE = "offline", "Offline"
    AUTH_NEEDED = "auth_needed", "Credentials needed"
    DEFAULT_PASSWORD = "default_password", "Default password"
    UNKNOWN = "unknown", "Not polled yet"


class Miner(ScopedModel):
    """A miner the org manages, as the device reported itself when it was added (and since)."""

    scope_org = "org"
    scope_site: ClassVar[str | None] = "site"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="miners")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="miners")
    # identity: mac: → serial: → auto: (see services.identity)
    identifier = models.CharField(max_length=120)
    name = models.CharField(max_length=120)
    make = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=120, blank=True)
    firmware = models.CharField(max_length=120, blank=True)
    serial = models.CharField(max_length=120, blank=True)
    mac = models.CharField(max_length=17, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    # address
    host = models.GenericIPAddressField()
    port = models.PositiveIntegerField()
    scheme = models.CharField(max_length=8, blank=True)
    driver = models.CharField(max_length=40)
    device_info = models.JSONField(default=dict)  # miners.DeviceInfo.to_dict(): reconnect from it
    capabilities = models.JSONField(default=list)
    # placement
    tags = models.JSONField(default=list, blank=True)
    rack = models.CharField(max_length=60, blank=True)
    position = models.CharField(max_length=60, blank=True)
    # who dials it: "cloud" (the server) or "node:<id>" (that fleet node, also in ``node``)
    managed_by = models.CharField(max_length=40, default="cloud")
    node = models.ForeignKey(
        "fleet.FleetNode",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="miners",
    )
    health = models.CharField(
        max_length=20, choices=MinerHealth.choices, default=MinerHealth.UNKNOWN
    )
    # credentials: write-only, envelope-encrypted (fleet.crypto); the version keys token caches
    username = models.CharField(max_length=120, blank=True)
    secret = models.BinaryField(null=True, blank=True, editable=False)
    credential_version = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(default=timezone.now, db_index=True)
    # a power target an action set; cleared by the first poll that shows the rig took it
    requested_power_target_w = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["org_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "identifier"], name="miner_identifier_unique"),
            # an address is unique per dialler: the cloud's miners per org, each node's miners
            # per node (two sites behind two nodes may both use 192.168.1.x); unassigned miners
            # (their node was revoked) wait to be claimed and hold no address
            models.UniqueConstraint(
                fields=["org", "host", "port"],
                condition=models.Q(managed_by="cloud"),
                name="miner_address_unique",
            ),
            models.UniqueConstraint(
                fields=["org", "node", "host", "port"],
                condition=models.Q(node__isnull=False),
                name="miner_address_per_node",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "site", "health"], name="miner_org_site_health"),
            # the default ordering: the list page walks it instead of sorting the fleet
            models.Index(fields=["org", "name", "id"], name="miner_org_name_id"),
        ]

    def __str__(self) -> str:
        return self.name

    def device_info_for_dial(self) -> DeviceInfo:
        """What the drivers connect from: the identity stored at pairing, with this row's
        address (the row is the one truth for where to dial)."""
        stored = {k: v for k, v in self.device_info.items() if k not in ("host", "port")}
        base = {"driver": self.driver, "make": self.make, "model": self.model}
        return DeviceInfo.from_dict({**base, **stored, "host": self.host, "port": self.port})

    @property
    def embedded_view_available(self) -> bool:
        """Whether the single-miner view (through the proxy) can show this miner's driver."""
        return self.driver in EMBEDDED_VIEW_DRIVERS

    @property
    def device_ui_url(self) -> str:
        """The rig's own web UI, for drivers the single-miner view can't show."""
        ports = self.device_info.get("ports") or {}
        port = ports.get("web", self.port)  # Antminer: the web CGIs, not the RPC port
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = self.scheme or ("https" if port == 443 else "http")
        default = {"http": 80, "https": 443}.get(scheme)
        return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"

    @property
    def secret_label(self) -> str:
        """Associated data of the password: this org, this row, this field."""
        return f"fleet.miner:{self.pk}:password"
