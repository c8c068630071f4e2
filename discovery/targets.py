"""Discovery targets as operators type them → the exact addresses a scan may dial. Pure: no
Django (the settings come in as arguments).

Forms: an IP (v4 or v6), a CIDR, ``A.B.C.D-E``, ``A.B.C.D-A.B.C.E``, nmap-style octet lists
and ranges (``10.0.1,3.1-254``, ``10.0.0.*``), a hostname (resolved once here; every address
it resolves to is checked and that checked address is what gets scanned — no second lookup),
and ``node-local-subnet`` (a node scans the subnet it sits on; only with a node).

Guardrails (security.md, Discovery): ≤ 4,096 addresses after expansion, ≤ 256 ports, no CIDR
wider than /20, and only addresses ``fleet.netguard`` lets the server dial (private ranges, or
what ``DISCOVERY_ALLOWED_NETWORKS`` lists). Every refusal names the target that caused it.
Sizes are checked before anything is expanded, so a /8 costs nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from discovery import limits
from fleet.netguard import AddressRefused, IPNetwork, check_dialable

NODE_LOCAL = "node-local-subnet"
Resolver = Callable[[str], list[str]]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?$", re.IGNORECASE
)
_OCTET_PART = re.compile(r"^(\*|[0-9]{1,3}(-[0-9]{1,3})?)$")
_SHORT_RANGE = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,3}){3})-([0-9]{1,3})$")


class TargetRefused(ValueError):
    """A target the run may not have; ``target`` is the offending entry as typed."""

    def __init__(self, target: str, message: str, *, field: str = "targets") -> None:
        super().__init__(f"{target}: {message}" if target else message)
        self.target = target
        self.field = field


@dataclass(frozen=True)
class Expanded:
    addresses: tuple[str, ...]
    ports: tuple[int, ...]
    node_local: bool = False

    @property
    def total(self) -> int:
        return len(self.addresses) * len(self.ports)

    def pairs(self) -> list[tuple[str, int]]:
        return [(a, p) for a in self.addresses for p in self.ports]


def system_resolver(name: str) -> list[str]:
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def expand(
    targets: Sequence[str],
    ports: Sequence[int] | None,
    *,
    default_ports: Sequence[int],
    allowed: Iterable[IPNetwork | str] = (),
    resolver: Resolver = system_resolver,
    via_node: bool = False,
) -> Expanded:
    """The checked scope of a run, or ``TargetRefused`` naming the first bad target."""
    allowed = list(allowed)
    if not targets:
        raise TargetRefused("", "Give at least one target.")
    if len(targets) > limits.MAX_TARGETS:
        raise TargetRefused("", f"At most {limits.MAX_TARGETS} targets per run.")
    checked_ports = ports_check(ports, default_ports)
    seen: dict[str, None] = {}
    node_local = False
    for raw in targets:
        if not isinstance(raw, str) or not raw.strip():
            raise TargetRefused(str(raw), "not a target")
        target = raw.strip()
        if len(target) > limits.TARGET_CHARS:
            raise TargetRefused(
                target[:40] + "…", f"at most {limits.TARGET_CHARS} characters per target"
            )
        if target.lower() == NODE_LOCAL:
            if not via_node:
                raise TargetRefused(target, "only a fleet node can scan its own subnet")
            node_local = True
            continue
        room = limits.MAX_ADDRESSES - len(seen)
        for address in _addresses(target, room, resolver):
            try:
                checked = str(check_dialable(address, allowed))
            except AddressRefused as exc:
                raise TargetRefused(target, str(exc)) from exc
            seen[checked] = None
            if len(seen) > limits.MAX_ADDRESSES:
                raise TargetRefused(target, _too_many())
    return Expanded(tuple(seen), checked_ports, node_local)


def ports_check(ports: Sequence[int] | None, default_ports: Sequence[int]) -> tuple[int, ...]:
    if ports is None or len(ports) == 0:
        return tuple(dict.fromkeys(default_ports))
    if len(ports) > limits.MAX_PORTS:
        raise TargetRefused("", f"At most {limits.MAX_PORTS} ports per run.", field="ports")
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise TargetRefused(str(port), "a port is a number from 1 to 65535", field="ports")
    return tuple(dict.fromkeys(ports))


def _too_many() -> str:
    return f"more than {limits.MAX_ADDRESSES:,} addresses in this run; narrow the ranges"


def _addresses(target: str, room: int, resolver: Resolver) -> Iterator[str]:
    """The addresses ``target`` stands for (not yet checked); refuses sizes beyond ``room``."""
    if "/" in target:
        yield from _cidr(target, room)
        return
    try:
        yield str(ipaddress.ip_address(target))
        return
    except ValueError:
        pass
    short = _SHORT_RANGE.match(target)
    if short:
        start = _v4(target, short.group(1))
        last = int(short.group(2))
        if last > 255:
            raise TargetRefused(target, "the range's end is not an octet (0-255)")
        end = ipaddress.IPv4Address((int(start) & 0xFFFFFF00) | last)
        yield from _span(target, start, end, room)
        return
    if target.count("-") == 1 and target.count(".") == 6:
        first, second = target.split("-")
        yield from _span(target, _v4(target, first), _v4(target, second), room)
        return
    octets = target.split(".")
    if len(octets) == 4 and all(
        all(_OCTET_PART.match(p) for p in o.split(",")) for o in octets if o
    ):
        yield from _nmap(target, octets, room)
        return
    if _HOSTNAME.match(target) and not target.replace(".", "").isdigit():
        yield from _resolve(target, resolver)
        return
    raise TargetRefused(target, "not an address, range, CIDR or hostname")


def _v4(target: str, text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise TargetRefused(target, f"{text!r} is not an IPv4 address") from None


def _cidr(target: str, room: int) -> Iterator[str]:
    try:
        network = ipaddress.ip_network(target, strict=False)
    except ValueError:
        raise TargetRefused(target, "not a CIDR (like 10.0.0.0/24)") from None
    widest = limits.WIDEST_V4_PREFIX if network.version == 4 else limits.WIDEST_V6_PREFIX
    if network.prefixlen < widest:
        raise TargetRefused(
            target,
            f"wider than /{widest} ({network.num_addresses:,} addresses); split it into "
            f"/{widest} ranges or smaller",
        )
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    if len(hosts) > room:
        raise TargetRefused(target, _too_many())
    for address in hosts:
        yield str(address)


def _span(
    target: str, start: ipaddress.IPv4Address, end: ipaddress.IPv4Address, room: int
) -> Iterator[str]:
    if end < start:
        raise TargetRefused(target, "the range ends before it starts")
    if int(end) - int(start) + 1 > room:
        raise TargetRefused(target, _too_many())
    for value in range(int(start), int(end) + 1):
        yield str(ipaddress.IPv4Address(value))


def _octet_values(target: str, spec: str) -> list[int]:
    values: dict[int, None] = {}
    for part in spec.split(","):
        if part == "*":
            low, high = 0, 255
        elif "-" in part:
            a, b = part.split("-")
            low, high = int(a), int(b)
        else:
            low = high = int(part)
        if high > 255 or low > high:
            raise TargetRefused(target, f"{part!r} is not an octet range (0-255)")
        values.update(dict.fromkeys(range(low, high + 1)))
    return list(values)


def _nmap(target: str, octets: list[str], room: int) -> Iterator[str]:
    if any(not o for o in octets):
        raise TargetRefused(target, "not an address, range, CIDR or hostname")
    lists = [_octet_values(target, o) for o in octets]
    size = len(lists[0]) * len(lists[1]) * len(lists[2]) * len(lists[3])
    if size > room:
        raise TargetRefused(target, _too_many())
    for a in lists[0]:
        for b in lists[1]:
            for c in lists[2]:
                for d in lists[3]:
                    yield f"{a}.{b}.{c}.{d}"


def _resolve(target: str, resolver: Resolver) -> Iterator[str]:
    try:
        found = resolver(target)
    except (OSError, UnicodeError):
        found = []
    if not found:
        raise TargetRefused(target, "the name does not resolve")
    for address in found:
        try:
            yield str(ipaddress.ip_address(address.split("%")[0]))
        except ValueError:
            raise TargetRefused(target, f"resolves to {address!r}, not an address") from None
