"""Discovery in the Django admin: read-only and scoped (writes go through the pages/API)."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ScopedAdmin, in_scope
from discovery.models import DiscoveredDevice, DiscoveryRun, SavedRange


@admin.register(DiscoveryRun)
class DiscoveryRunAdmin(ScopedAdmin):
    scope_permission = "discovery:run"
    list_display = ["id", "org", "site", "via", "node", "status", "outcome", "found", "created_at"]
    list_filter = [in_scope("org"), in_scope("site"), "via", "status", "outcome"]
    list_select_related = ["org", "site", "node"]


@admin.register(DiscoveredDevice)
class DiscoveredDeviceAdmin(ScopedAdmin):
    scope_permission = "discovery:run"
    list_display = ["identifier", "host", "port", "driver", "model", "node", "miner", "last_seen"]
    list_filter = [in_scope("org"), in_scope("site"), "driver"]
    search_fields = ["identifier", "host", "serial", "mac"]
    list_select_related = ["node", "miner"]


@admin.register(SavedRange)
class SavedRangeAdmin(ScopedAdmin):
    scope_permission = "discovery:run"
    list_display = ["name", "org", "site", "node", "interval_minutes", "enabled", "next_run_at"]
    list_filter = [in_scope("org"), in_scope("site"), "enabled"]
    list_select_related = ["org", "site", "node"]
