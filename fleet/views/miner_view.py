"""The single-miner view: a miner's own API, live, through the proxy.

The page is a shell: its script reads the rig through ``/api-proxy/miners/<id>/<native API>``
with the session (the proxy injects the rig's token or answers its digest challenge, and
enforces the permission map), picking an adapter by the miner's driver (ProtoOS REST, stock
Antminer web CGI). Pool changes, and on a stock Antminer every change its one config body
carries (work mode, fans) plus reboot, go through the audited Fleet actions. What the firmware
has decides which sections show (``FIRMWARES``); what the caller may do is decided here, from
their grants at the miner's site, and rendered into the page: controls they can't use are
disabled with the reason, and the proxy refuses the same calls if the page is bypassed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.authz import has_perm
from accounts.models import Organization
from accounts.views.base import PageRequest
from fleet.actions import ACTIONS
from fleet.models import Miner, MinerLatest
from fleet.views.base import miner_page
from miners.registry import NATIVE_API_PREFIXES

POLL_SECONDS = 5


@dataclass(frozen=True)
class Firmware:
    """What one firmware's API offers the view; the script's adapter of the same name reads
    and writes it. A section the firmware lacks is hidden with ``missing[section]``."""

    label: str
    watts: bool
    """A watt-level power target (else named modes only)."""
    modes: tuple[tuple[str, str], ...]
    log_sources: tuple[tuple[str, str], ...]
    missing: dict[str, str]
    fleet_power: str = ""
    """When the firmware's own API has no power figure but the fleet's poll has one (another
    protocol of the same rig), where it comes from: the page shows the latest telemetry's power
    and efficiency with this label, refreshed from ``/api/v1/miners/<id>/``."""


FIRMWARES = {
    "protoos": Firmware(
        label="ProtoOS",
        watts=True,
        modes=(("MaximumHashrate", "Maximum hashrate"), ("Efficiency", "Efficiency")),
        log_sources=(
            ("miner_sw", "Miner software (all services)"),
            ("pool_sw", "Pool interface"),
            ("os", "Operating system (kernel)"),
            ("miner_web_server", "API server"),
        ),
        missing={},
    ),
    "antminer": Firmware(
        label="Stock Antminer",
        watts=False,
        modes=(("maximum_hashrate", "Normal (maximum hashrate)"), ("efficiency", "Low power")),
        log_sources=(("kernel", "Kernel log"),),
        missing={
            "psus": "Stock Antminer firmware doesn't report its power supply.",
            "watts": "Stock Antminer firmware has no watt-level target: pick a work mode.",
        },
        fleet_power="From Rigwarden's poll over CGMiner RPC (the web CGI has no power figure)",
    ),
}


@dataclass(frozen=True)
class Control:
    """One thing the view can do, and whether this caller may."""

    key: str
    label: str
    permission: str
    allowed: bool
    reason: str  # "" when allowed


CONTROLS = (
    ("power_target", "Power target", "miner:set_power_target"),
    ("blink", "Blink LED", "miner:blink_led"),
    ("reboot", "Reboot", "miner:reboot"),
    ("start", "Start mining", "miner:start_mining"),
    ("stop", "Stop mining", "miner:stop_mining"),
    ("cooling", "Cooling mode", "miner:set_cooling_mode"),
    ("pools", "Pools", ACTIONS["set_pools"].permission),
    ("logs", "Logs", "miner:download_logs"),
)


def view_controls(user: Any, miner: Miner) -> dict[str, Control]:
    """Every control of the view with the caller's right to it at the miner's site."""
    controls = {}
    for key, label, permission in CONTROLS:
        allowed = has_perm(user, permission, miner.org_id, miner.site_id)
        reason = "" if allowed else f"your role at {miner.site.name} doesn't include {permission}"
        controls[key] = Control(key, label, permission, allowed, reason)
    return controls


def _config(
    request: PageRequest, miner: Miner, controls: dict[str, Control], firmware: Firmware
) -> dict[str, Any]:
    """What the page's script needs: which adapter, where to read, what it may write, the
    audited action routes (never a token)."""
    return {
        "name": miner.name,
        "driver": miner.driver,
        "proxy": f"/api-proxy/miners/{miner.pk}{NATIVE_API_PREFIXES[miner.driver]}",
        "poll_ms": POLL_SECONDS * 1000,
        "csrf": get_token(request),
        "can": {key: control.allowed for key, control in controls.items()},
        "pools_action": reverse("miner-action-set_pools", args=[miner.pk]),
        "actions": {kind: reverse(f"miner-action-{kind}", args=[miner.pk]) for kind in ACTIONS},
        "job_page": reverse("job-page", args=[0]),
        # the fleet's own record of the miner (its latest telemetry), for figures the
        # firmware's API lacks; null when the firmware reports them itself
        "fleet_miner": reverse("miner-detail", args=[miner.pk]) if firmware.fleet_power else None,
    }


def _latest(miner: Miner) -> MinerLatest | None:
    """The fleet's last successful poll of the miner, or None (never polled, or all failed)."""
    try:
        latest: MinerLatest = miner.latest
    except MinerLatest.DoesNotExist:
        return None
    return latest if latest.updated_at is not None else None


@miner_page("miner:read")
@require_GET
def miner_view(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    controls = view_controls(request.user, miner)
    firmware = FIRMWARES.get(miner.driver) if miner.embedded_view_available else None
    context = {
        "org": org,
        "miner": miner,
        "controls": controls,
        "buttons": [controls[key] for key in ("blink", "reboot", "start", "stop")],
        "firmware": firmware,
        "log_sources": firmware.log_sources if firmware else (),
        "config": _config(request, miner, controls, firmware) if firmware else None,
        "latest": _latest(miner),
        "can_pair": has_perm(request.user, "miner:pair", org.pk, miner.site_id),
    }
    return render(request, "fleet/miners/view.html", context)
