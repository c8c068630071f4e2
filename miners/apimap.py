"""Method + path → what a forwarded call to a miner's own API needs: the permission, or a
refusal. Pure data and one pure function, shared by the server's proxy (``proxy.pathmap``) and
the fleet node's HTTP tunnel (``fleetnode.tunnel``), so both apply the same rules.

``PROTOOS`` lists every operation of the ProtoOS MDK API 1.8.2 spec and ``ANTMINER`` every CGI
of the stock Antminer web interface we know (contract tests check none is missing). Paths are
relative to the driver's prefix (``PREFIXES``) with ``{name}`` for one path segment. On ProtoOS
a call the table doesn't name needs ``miner:read`` when it is a read and the elevated
``miner:admin`` when it is a write. Stock CGIs change state on GET too (``reboot.cgi`` does),
so an Antminer CGI the table doesn't name needs ``miner:admin`` whatever the method and is
handled (audited) as a write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from miners.antminer import companion_port
from miners.antminer_web import WEB_PORT
from miners.cgminer import RPC_PORT
from miners.registry import NATIVE_API_PREFIXES

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN = "miner:admin"
CREDENTIAL = "credential"
"""Never proxied: logins, tokens and passwords stay between the server and the rig."""
POOLS = "pools"
"""Never proxied: pool changes redirect hashrate, so they go through the audited action."""

UNSAFE_GET = "unsafe-get"
"""Never proxied as a GET: a CGI that changes the miner on GET; the table maps its POST."""

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

ANTMINER: dict[tuple[str, str], str] = {
    ("GET", "/get_system_info.cgi"): "miner:read",
    ("GET", "/miner_type.cgi"): "miner:read",
    ("GET", "/get_network_info.cgi"): "miner:read",
    ("GET", "/get_miner_conf.cgi"): "miner:read",
    # the whole config (pools, work mode, fans) in one body: the audited actions
    # set_pools / set_power_target / set_cooling_mode write it instead
    ("POST", "/set_miner_conf.cgi"): POOLS,
    ("POST", "/set_network_conf.cgi"): ADMIN,
    ("POST", "/blink.cgi"): "miner:blink_led",
    ("GET", "/get_blink_status.cgi"): "miner:read",
    ("POST", "/reboot.cgi"): "miner:reboot",
    ("GET", "/reboot.cgi"): UNSAFE_GET,
    ("POST", "/passwd.cgi"): CREDENTIAL,
    ("GET", "/passwd.cgi"): CREDENTIAL,
    ("GET", "/get_kernel_log.cgi"): "miner:download_logs",
    ("GET", "/summary.cgi"): "miner:read",
    ("GET", "/stats.cgi"): "miner:read",
    ("GET", "/pools.cgi"): "miner:read",
    ("GET", "/chart.cgi"): "miner:read",
    ("POST", "/upgrade.cgi"): "miner:firmware_update",
    ("POST", "/reset_conf.cgi"): ADMIN,
    ("GET", "/reset_conf.cgi"): UNSAFE_GET,
}

MAPS: dict[str, dict[tuple[str, str], str]] = {"protoos": PROTOOS, "antminer": ANTMINER}
"""Per driver; a driver without a map is not proxied (``PREFIXES`` says which are)."""

PREFIXES: dict[str, str] = {name: NATIVE_API_PREFIXES[name] for name in MAPS}
"""The native API prefix the proxy forwards under, per driver (``miners.registry`` says it,
so the miners API can tell a UI where a miner's API is)."""

UNMAPPED_IS_WRITE = frozenset({"antminer"})
"""Drivers whose unmapped calls are writes whatever the method (CGIs change state on GET)."""
REFUSALS = frozenset({CREDENTIAL, POOLS, UNSAFE_GET})


@dataclass(frozen=True, slots=True)
class Decision:
    """``permission`` to hold, or ``refusal`` (CREDENTIAL / POOLS / UNSAFE_GET) and why;
    ``write``: audited and held to the same-origin rules even when the method is a read."""

    permission: str | None
    refusal: str | None = None
    rule: str = ""
    write: bool = False


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
    write = method not in READ_METHODS
    for rule_method, pattern, outcome, template in _compiled(driver):
        if rule_method == method and pattern.fullmatch(path):
            if outcome in REFUSALS:
                return Decision(None, outcome, template, write)
            return Decision(outcome, None, template, write)
    if driver in UNMAPPED_IS_WRITE:
        return Decision(ADMIN, write=True)
    if not write:
        return Decision("miner:read")
    return Decision(ADMIN, write=True)


def http_port(driver: str, port: int, ports: Any) -> int:
    """The port of a miner's HTTP API. A stock Antminer is stored by its RPC or its web port
    (``ports`` is the identity's ``{"rpc", "web"}`` when known), and its web CGI listens on the
    web one, as ``AntminerDriver.connect`` works it out; other drivers use ``port``."""
    if driver != "antminer":
        return port
    web = ports.get("web") if isinstance(ports, dict) else None
    if isinstance(web, int) and not isinstance(web, bool) and 0 < web < 65536:
        return web
    if port == WEB_PORT:
        return port
    shifted = companion_port(port, RPC_PORT, WEB_PORT)
    return shifted if 0 < shifted < 65536 else WEB_PORT
