"""Template helpers of the fleet pages: figures with their units, health badges."""

from __future__ import annotations

from django import template
from django.conf import settings

from fleet.forms import action_label
from fleet.health import is_reporting

register = template.Library()


@register.simple_tag
def demo_sim_password() -> str:
    """The demo's simulated miners' password (``DEMO_SIM_PASSWORD``, set by the demo launcher
    for its server only), or "" outside the demo: the pairing forms say what to type."""
    return str(getattr(settings, "DEMO_SIM_PASSWORD", "") or "")


_HEALTH_BADGES = {
    "ok": "badge-ok",
    "degraded": "badge-accent",
    "default_password": "badge-accent",
    "offline": "badge-danger",
    "auth_needed": "badge-danger",
}
_ITEM_BADGES = {"ok": "badge-ok", "failed": "badge-danger", "skipped": "badge-accent"}
_JOB_BADGES = {"done": "badge-ok", "running": "badge-accent", "cancelled": "badge-danger"}


def _number(value: object) -> float | None:
    """A figure, or None for a missing one (the template gives "" for a miner never polled)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _scaled(value: object, units: tuple[str, ...], digits: int = 1) -> str:
    number = _number(value)
    if number is None:
        return "—"
    scaled, unit = number, units[0]
    for bigger in units[1:]:
        if abs(scaled) < 1000:
            break
        scaled, unit = scaled / 1000, bigger
    return f"{scaled:,.{digits}f} {unit}"


@register.filter
def hashrate(value: object) -> str:
    """TH/s figures, scaled to PH/s and EH/s for fleets."""
    return _scaled(value, ("TH/s", "PH/s", "EH/s"))


@register.filter
def power(value: object) -> str:
    """Watts, scaled to kW and MW."""
    number = _number(value)
    if number is not None and abs(number) < 1000:
        return f"{number:,.0f} W"
    return _scaled(number, ("W", "kW", "MW"), 2)


@register.filter
def efficiency(value: object) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.1f} J/TH"


@register.filter
def celsius(value: object) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.0f} °C"


@register.filter
def health_badge(health: str) -> str:
    return _HEALTH_BADGES.get(health, "")


@register.filter
def item_badge(status: str) -> str:
    return _ITEM_BADGES.get(status, "")


@register.filter
def job_badge(status: str) -> str:
    return _JOB_BADGES.get(status, "")


@register.filter
def percent(ratio: object) -> str:
    number = _number(ratio)
    return "—" if number is None else f"{number:.0%}"


register.filter("action_label", action_label)


@register.filter
def stale(miner: object) -> bool:
    """Whether the miner's last figures are out of date (it does not report,
    ``fleet.health.REPORTING``): pages show them as "last seen", not as its current state."""
    latest = getattr(miner, "latest", None)
    if latest is None or latest.updated_at is None:
        return False  # nothing to show either way
    return not is_reporting(str(getattr(miner, "health", "")), latest.failures, True)
