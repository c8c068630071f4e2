"""Template helpers for the pages: icons, device summaries and the nav's current section."""

from __future__ import annotations

import json
import re
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Inline SVG (24x24, stroked): no icon font, nothing fetched, nothing the CSP has to allow.
_ICONS: dict[str, str] = {
    "home": '<path d="M3 10.5 12 3l9 7.5V21h-6v-6H9v6H3z"/>',
    "users": '<circle cx="9" cy="7" r="4"/><path d="M2 21v-2a4 4 0 0 1 4-4h6a4 4 0 0 1 4 4v2"/>'
    '<path d="M16 3.13a4 4 0 0 1 0 7.75M22 21v-2a4 4 0 0 0-3-3.87"/>',
    "roles": '<path d="M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z"/><path d="m9 12 2 2 4-4"/>',
    "site": '<path d="M12 22s7-6.2 7-12a7 7 0 0 0-14 0c0 5.8 7 12 7 12z"/><circle cx="12" cy="10" r="2.5"/>',
    "key": '<circle cx="7.5" cy="15.5" r="5.5"/><path d="m21 2-9.6 9.6M15.5 7.5l3 3L22 7l-3-3"/>',
    "activity": '<path d="M22 12h-4l-3 9L9 3l-3 9H2"/>',
    "lock": '<rect x="3" y="11" width="18" height="11" rx="2"/><path d="M7 11V7a5 5 0 0 1 10 0v4"/>',
    "fleet": '<path d="M3 3v18h18"/><path d="m7 15 4-5 3 3 5-7"/>',
    "miner": '<rect x="2" y="4" width="20" height="7" rx="1.5"/><rect x="2" y="13" width="20" height="7" rx="1.5"/>'
    '<path d="M6 7.5h.01M6 16.5h.01M10 7.5h8M10 16.5h8"/>',
    "menu": '<path d="M3 6h18M3 12h18M3 18h18"/>',
    "sun": '<circle cx="12" cy="12" r="4"/><path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4'
    'M2 12h2M20 12h2M6.3 17.7l-1.4 1.4M19.1 4.9l-1.4 1.4"/>',
    "moon": '<path d="M21 12.8A9 9 0 1 1 11.2 3 7 7 0 0 0 21 12.8z"/>',
}


@register.simple_tag
def icon(name: str, css_class: str = "") -> SafeString:
    body = _ICONS[name]
    return format_html(
        '<svg class="{}" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" '
        'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">{}</svg>',
        css_class,
        mark_safe(body),  # noqa: S308 - constant markup from _ICONS above
    )


# URL names → nav section; allauth's account and MFA pages belong to Security.
_SECTIONS = {
    "dashboard": "dashboard",
    "fleet-dashboard": "fleet",
    "users": "users",
    "roles": "roles",
    "sites": "sites",
    "tokens": "tokens",
    "activity": "activity",
    "security": "security",
    "jobs": "jobs",
}


@register.simple_tag(takes_context=True)
def nav_section(context: dict[str, Any]) -> str:
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    name = getattr(match, "url_name", None) or ""
    if name in _SECTIONS:
        return _SECTIONS[name]
    for prefix, section in (
        ("users-", "users"),
        ("sso-", "sso"),
        ("role-", "roles"),
        ("site-", "sites"),
        ("token-", "tokens"),
        ("node", "nodes"),
        ("miner", "miners"),
        ("job-", "jobs"),
        ("session", "security"),
    ):
        if name.startswith(prefix):
            return section
    return "security" if name.startswith(("account_", "mfa_")) else ""


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
    ("curl/", "curl"),
    ("python-requests/", "Python requests"),
    ("python-httpx/", "Python httpx"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


@register.filter
def ua_summary(user_agent: str | None) -> str:
    """'Firefox 131 on Linux' from a User-Agent header; the raw string stays in a title attribute."""
    if not user_agent:
        return "Unknown device"
    browser = ""
    for token, label in _BROWSERS:
        found = re.search(re.escape(token) + r"(\d+)", user_agent)
        if found:
            browser = f"{label} {found.group(1)}"
            break
    system = next((label for token, label in _SYSTEMS if token in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:40]


@register.filter
def initial(user: Any) -> str:
    text = (getattr(user, "full_name", "") or getattr(user, "email", "") or "?").strip()
    return text[:1].upper() or "?"


@register.filter
def as_json(value: Any) -> str:
    """Pretty JSON for an event's details (autoescaped by the template like any string)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)
