"""The permission catalog: the single source of truth for what can be granted.

Every API route, page, WebSocket consumer and proxied miner path names one of these (or one of
the route classes ``PUBLIC``/``AUTHENTICATED``/``STAFF``); ``tests/test_route_contract.py``
fails when a route declares nothing or names something that isn't here.
"""

from __future__ import annotations

from typing import Final

CATALOG: Final[dict[str, str]] = {
    "org:manage": "Rename the organization and change org-wide settings",
    "user:read": "See members, their roles and site assignments",
    "user:manage": "Invite, remove and change the roles of members",
    "role:manage": "Create, edit and delete custom roles",
    "apikey:manage": "Revoke other members' API tokens",
    "activity:read": "Read the activity log and export it",
    "site:read": "See sites",
    "site:manage": "Create, rename and delete sites",
    "fleet:read": "See fleet dashboards and aggregates",
    "miner:read": "See miners and their telemetry",
    "miner:pair": "Pair discovered miners",
    "miner:unpair": "Unpair miners",
    "miner:rename": "Rename miners",
    "miner:delete": "Delete miners",
    "miner:reboot": "Reboot miners",
    "miner:blink_led": "Blink a miner's locate LED",
    "miner:start_mining": "Start mining",
    "miner:stop_mining": "Stop mining",
    "miner:set_power_target": "Change power targets",
    "miner:set_cooling_mode": "Change cooling mode",
    "miner:update_pools": "Change pools (redirects hashrate)",
    "miner:download_logs": "Download miner logs",
    "miner:firmware_update": "Update miner firmware",
    "miner:export_csv": "Export miner lists as CSV",
    "miner:admin": "Unmapped writes to a miner's own API through the proxy",
    "fleetnode:read": "See fleet nodes",
    "fleetnode:manage": "Enroll, confirm and revoke fleet nodes",
    "discovery:run": "Run network discovery",
    "terminal:open": "Open SSH terminals to hosts",
    "terminal:manage": "Manage SSH hosts, credentials and host keys",
}

ALL: Final[frozenset[str]] = frozenset(CATALOG)

# Route classes that are not catalog permissions but are valid declarations.
PUBLIC: Final = (
    "public"  # no sign-in needed (health, sign-in pages, node gateway with its own auth)
)
AUTHENTICATED: Final = "authenticated"  # any signed-in user, acting only on their own data
STAFF: Final = "staff"  # Django admin: is_staff, then restrict() per model
ROUTE_CLASSES: Final[frozenset[str]] = frozenset({PUBLIC, AUTHENTICATED, STAFF})

_READS: Final[frozenset[str]] = frozenset(
    {"user:read", "activity:read", "site:read", "fleet:read", "miner:read", "fleetnode:read"}
)
_MINER_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "miner:pair",
        "miner:unpair",
        "miner:rename",
        "miner:reboot",
        "miner:blink_led",
        "miner:start_mining",
        "miner:stop_mining",
        "miner:set_power_target",
        "miner:set_cooling_mode",
        "miner:update_pools",
        "miner:download_logs",
        "miner:export_csv",
    }
)

BUILTIN_ROLES: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "owner": ("Everything, including organization settings.", ALL),
    "admin": ("Everything except organization settings.", ALL - {"org:manage"}),
    "operator": (
        "Reads, miner actions and discovery.",
        _READS | _MINER_ACTIONS | {"discovery:run", "terminal:open"},
    ),
    "viewer": ("Read-only access.", _READS),
    "field_tech": (
        "Reads, locate LED and logs: for people at the racks.",
        _READS | {"miner:blink_led", "miner:download_logs"},
    ),
}


def is_declarable(name: str) -> bool:
    return name in ALL or name in ROUTE_CLASSES


def validate_permissions(names: list[str] | set[str] | frozenset[str]) -> list[str]:
    """Return the unknown names (empty when all are in the catalog)."""
    return sorted(set(names) - ALL)
