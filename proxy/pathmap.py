"""Method + path → what the proxy does: the permission a call needs, or a refusal.

Data, not code: ``PROTOOS`` lists every operation of the ProtoOS MDK API 1.8.2 spec (a contract
test checks none is missing). Paths are relative to ``/api/v1`` with ``{name}`` for one path
segment. A call the table doesn't name needs ``miner:read`` when it is a read and the
elevated ``miner:admin`` when it is a write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN = "miner:admin"
CREDENTIAL = "credential"
"""Never proxied: logins, tokens and passwords stay between the server and the rig."""
POOLS = "pools"
"""Never proxied: pool changes redirect hashrate, so they go through the audited action."""

POOL_ACTION = "/api/v1/miners/{id}/actions/set_pools/"

PROTOOS: dict[tuple[str, str], str] = {
    ("GET", "/pools"): "miner:read",
    ("POST", "/pools"): POOLS,
    ("GET", "/pools/{id}"): "miner:read",
    ("PUT", "/pools/{id}"): POOLS,
    ("DELETE", "/pools/{id}"): POOLS,
    ("POST", "/pools/test-connection"): "miner:update_pools",
    ("PUT", "/auth/password"): CREDENTIAL,
    ("PUT", "/auth/change-password"): CREDENTIAL,
    ("POST", "/auth/login"): CREDENTIAL,
    ("POST", "/auth/logout"): CREDENTIAL,
    ("POST", "/auth/refresh"): CREDENTIAL,
    ("GET", "/system"): "miner:read",
    ("GET", "/system/status"): "miner:read",
    ("GET", "/curtailment/config"): "miner:read",
    ("PUT", "/curtailment/config"): ADMIN,
    ("GET", "/curtailment/status"): "miner:read",
    ("GET", "/mining"): "miner:read",
    ("GET", "/mining/target"): "miner:read",
    ("PUT", "/mining/target"): "miner:set_power_target",
    ("PUT", "/mining/tuning"): "miner:set_power_target",
    ("POST", "/mining/start"): "miner:start_mining",
    ("POST", "/mining/stop"): "miner:stop_mining",
    ("POST", "/system/reboot"): "miner:reboot",
    ("POST", "/system/locate"): "miner:blink_led",
    ("GET", "/system/logs"): "miner:download_logs",
    ("POST", "/system/update/check"): "miner:firmware_update",
    ("POST", "/system/update"): "miner:firmware_update",
    ("PUT", "/system/update"): "miner:firmware_update",
    ("GET", "/system/ssh"): "miner:read",
    ("PUT", "/system/ssh"): ADMIN,
    ("GET", "/system/secure"): "miner:read",
    ("PUT", "/system/secure"): ADMIN,
    ("GET", "/system/unlock"): "miner:read",
    ("PUT", "/system/unlock"): CREDENTIAL,  # takes the rig's password
    ("GET", "/hashboards"): "miner:read",
    ("GET", "/hashboards/{hb_sn}"): "miner:read",
    ("GET", "/hashboards/{hb_sn}/{asic_id}"): "miner:read",
    ("GET", "/hashrate"): "miner:read",
    ("GET", "/hashrate/{hb_sn}"): "miner:read",
    ("GET", "/hashrate/{hb_sn}/{asic_id}"): "miner:read",
    ("GET", "/temperature"): "miner:read",
    ("GET", "/temperature/{hb_sn}"): "miner:read",
    ("GET", "/temperature/{hb_sn}/{asic_id}"): "miner:read",
    ("GET", "/power"): "miner:read",
    ("GET", "/hardware"): "miner:read",
    ("GET", "/hardware/psus"): "miner:read",
    ("GET", "/power-supplies"): "miner:read",
    ("POST", "/power-supplies/update"): "miner:firmware_update",
    ("GET", "/power/{hb_sn}"): "miner:read",
    ("GET", "/efficiency"): "miner:read",
    ("GET", "/efficiency/{hb_sn}"): "miner:read",
    ("GET", "/cooling"): "miner:read",
    ("PUT", "/cooling"): "miner:set_cooling_mode",
    ("GET", "/network"): "miner:read",
    ("PUT", "/network"): ADMIN,
    ("GET", "/errors"): "miner:read",
    ("GET", "/system/tag"): "miner:read",
    ("PUT", "/system/tag"): "miner:rename",
    ("DELETE", "/system/tag"): "miner:rename",
    ("GET", "/system/telemetry"): "miner:read",
    ("PUT", "/system/telemetry"): ADMIN,
    ("POST", "/timeseries"): "miner:read",  # a query with a JSON body; changes nothing
    ("GET", "/telemetry"): "miner:read",
    ("GET", "/pairing/info"): "miner:read",
    ("POST", "/pairing/auth-key"): CREDENTIAL,
    ("DELETE", "/pairing/auth-key"): CREDENTIAL,
}

MAPS: dict[str, dict[tuple[str, str], str]] = {"protoos": PROTOOS}
"""Per driver; a driver without a map is not proxied (``PREFIXES`` says which are)."""

PREFIXES: dict[str, str] = {"protoos": "/api/v1"}
"""The native API prefix the proxy forwards under, per driver."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``permission`` to hold, or ``refusal`` (CREDENTIAL / POOLS) and why."""

    permission: str | None
    refusal: str | None = None
    rule: str = ""


@cache
def _compiled(driver: str) -> list[tuple[str, re.Pattern[str], str, str]]:
    rules = []
    for (method, template), outcome in MAPS[driver].items():
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern)
        rules.append((method, re.compile(pattern + r"/?"), outcome, template))
    # literal templates first, so /pools/test-connection beats /pools/{id}
    rules.sort(key=lambda rule: rule[3].count("{"))
    return rules


def classify(driver: str, method: str, path: str) -> Decision:
    """What ``method path`` (relative to the driver's prefix) needs on ``driver``."""
    method = "GET" if method == "HEAD" else method
    for rule_method, pattern, outcome, template in _compiled(driver):
        if rule_method == method and pattern.fullmatch(path):
            if outcome in (CREDENTIAL, POOLS):
                return Decision(None, outcome, template)
            return Decision(outcome, None, template)
    if method in READ_METHODS:
        return Decision("miner:read")
    return Decision(ADMIN)
