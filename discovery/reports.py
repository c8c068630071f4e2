"""A node's ``discovery_batch`` devices → ``Found`` values, or the reason each is dropped.
Pure: no Django. Lengths are the column sizes (``discovery.limits``): a value longer than its
column is malformed and dropped, never truncated into something else."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from typing import Any

from discovery import limits
from fleet.netguard import AddressRefused, IPNetwork, check_dialable
from fleet.services.identity import normalise_mac
from miners.scan import Found

MALFORMED = "malformed"
OUT_OF_SCOPE = "out_of_scope"
NOT_PRIVATE = "not_private"
OVER_QUOTA = "over_quota"

_TEXT = (
    ("driver", limits.DRIVER_CHARS),
    ("make", limits.MAKE_CHARS),
    ("model", limits.MODEL_CHARS),
    ("firmware", limits.FIRMWARE_CHARS),
    ("serial", limits.SERIAL_CHARS),
)


class Dropped(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def found_from_report(
    data: Any,
    *,
    drivers: Collection[str],
    hosts: Collection[str],
    ports: Collection[int],
    node_local: bool,
    allowed: Iterable[IPNetwork | str],
) -> Found:
    """One reported device, checked: types and sizes, scheme, driver, scope, private rule."""
    if not isinstance(data, dict):
        raise Dropped(MALFORMED)
    text: dict[str, str] = {}
    for name, size in (*_TEXT, ("scheme", limits.SCHEME_CHARS), ("mac", 64), ("host", 64)):
        value = data.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > size or "\x00" in value:
            raise Dropped(MALFORMED)
        text[name] = value.strip()
    port = data.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise Dropped(MALFORMED)
    if text["scheme"].lower() not in limits.SCHEMES or text["driver"] not in drivers:
        raise Dropped(MALFORMED)
    mac = normalise_mac(text["mac"])
    if text["mac"] and not mac:
        raise Dropped(MALFORMED)
    try:
        host = str(ipaddress.ip_address(text["host"]))
    except ValueError:
        raise Dropped(MALFORMED) from None
    if not node_local and (host not in hosts or port not in ports):
        raise Dropped(OUT_OF_SCOPE)
    if node_local and port not in ports:
        raise Dropped(OUT_OF_SCOPE)
    try:
        check_dialable(host, allowed)
    except AddressRefused:
        raise Dropped(NOT_PRIVATE) from None
    return Found(
        host=host,
        port=port,
        scheme=text["scheme"].lower(),
        driver=text["driver"],
        make=text["make"],
        model=text["model"],
        firmware=text["firmware"],
        mac=mac,
        serial=text["serial"],
    )
