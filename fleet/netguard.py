"""Which addresses the server may dial as miners. Pure: no Django.

Private ranges (RFC 1918, RFC 4193) are allowed; loopback, link-local (cloud metadata lives
there), multicast, unspecified, reserved and public addresses are refused unless an operator
listed a range containing them in ``DISCOVERY_ALLOWED_NETWORKS``. CGNAT (100.64/10) counts as
public unless listed. One rule for every dial: adding a miner, polling, actions, the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PRIVATE: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)
PRIVATE = DEFAULT_PRIVATE  # what check_dialable allows without configuration
# The rule, for the API schema (it depends on settings, so a description, not a pattern).
DIALABLE_HELP = (
    "An IP address (not a host name) the server may dial: in a private range ("
    + ", ".join(str(n) for n in DEFAULT_PRIVATE)
    + ") and not loopback, link-local, multicast or unspecified, unless "
    "DISCOVERY_ALLOWED_NETWORKS lists its range; any other is a 400 naming the reason."
)


class AddressRefused(ValueError):
    """The address is not one the server may dial; the message says why."""


def parse_address(host: str) -> IPAddress:
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError as exc:
        raise AddressRefused(f"{host!r} is not an IP address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def check_dialable(host: str, allowed: Iterable[IPNetwork | str] = ()) -> IPAddress:
    """The parsed address, or ``AddressRefused`` naming the reason."""
    address = parse_address(host)
    extra = [ipaddress.ip_network(n) if isinstance(n, str) else n for n in allowed]
    if any(address.version == n.version and address in n for n in extra):
        return address
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    ):
        if flag:
            raise AddressRefused(
                f"{address} is a {reason} address; list its range in "
                "DISCOVERY_ALLOWED_NETWORKS to allow it"
            )
    if any(address.version == n.version and address in n for n in PRIVATE):
        return address
    raise AddressRefused(
        f"{address} is not in a private range (10/8, 172.16/12, 192.168/16, fc00::/7); "
        "list it in DISCOVERY_ALLOWED_NETWORKS to allow it"
    )
