"""Read-only admin views of the fleet, scoped like the rest (accounts.admin.ScopedAdmin).

Credentials never appear here: the secret column is excluded and there are no forms.
"""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ScopedAdmin, in_scope
from fleet.models import FleetSettings, Miner
from fleet.nodes import admin as nodes_admin  # noqa: F401  (registers FleetNode, NodeCommand)


@admin.register(Miner)
class MinerAdmin(ScopedAdmin):
    scope_permission = "miner:read"
    list_display = ["name", "host", "port", "driver", "model", "health", "site", "org"]
    list_filter = [in_scope("org"), in_scope("site"), "health", "driver"]
    search_fields = ["name", "host", "serial", "mac", "hostname"]
    exclude = ["secret"]
    list_select_related = ["org", "site"]


@admin.register(FleetSettings)
class FleetSettingsAdmin(ScopedAdmin):
    """Read-only like the rest: the interval is changed on /fleet/settings/ or the API (an
    audited service), never here."""

    scope_permission = "fleet:read"
    list_display = ["org", "poll_interval_s", "updated_at"]
    list_filter = [in_scope("org")]
    list_select_related = ["org"]
