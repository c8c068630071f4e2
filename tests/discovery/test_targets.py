"""Guardrails on what a run may scan: every refusal path of the issue, without a database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from discovery import limits
from discovery.targets import NODE_LOCAL, TargetRefused, expand
from fleet import netguard

PORTS = (80, 4028)


@pytest.fixture(autouse=True)
def _private_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's own private ranges (tests/conftest.py empties them so nothing dials
    them by accident; expanding dials nothing)."""
    monkeypatch.setattr(netguard, "PRIVATE", netguard.DEFAULT_PRIVATE)


def resolver(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    calls: list[str] = []

    def resolve(name: str) -> list[str]:
        calls.append(name)
        if name not in table:
            raise OSError("no such name")
        return table[name]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def refused(targets: list[str], **kwargs: object) -> TargetRefused:
    with pytest.raises(TargetRefused) as info:
        expand(targets, kwargs.pop("ports", None), default_ports=PORTS, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_every_form_expands() -> None:
    scope = expand(
        ["10.0.0.5", "10.0.1.0/30", "10.0.2.1-3", "10.0.3.250-10.0.4.1", "10.0.5,6.7-8"],
        [80],
        default_ports=PORTS,
    )
    assert scope.addresses == (
        "10.0.0.5",
        "10.0.1.1",
        "10.0.1.2",
        "10.0.2.1",
        "10.0.2.2",
        "10.0.2.3",
        "10.0.3.250",
        "10.0.3.251",
        "10.0.3.252",
        "10.0.3.253",
        "10.0.3.254",
        "10.0.3.255",
        "10.0.4.0",
        "10.0.4.1",
        "10.0.5.7",
        "10.0.5.8",
        "10.0.6.7",
        "10.0.6.8",
    )
    assert scope.ports == (80,)


def test_a_slash_20_is_the_widest_and_duplicates_count_once() -> None:
    scope = expand(["10.1.0.0/20", "10.1.0.7"], None, default_ports=PORTS)
    assert len(scope.addresses) == 4094
    assert scope.ports == PORTS
    assert scope.total == 4094 * 2


def test_ipv6_and_wildcards() -> None:
    assert expand(["fd00::1"], [80], default_ports=PORTS).addresses == ("fd00::1",)
    assert len(expand(["192.168.7.*"], [80], default_ports=PORTS).addresses) == 256


def test_public_ip_is_refused_naming_it() -> None:
    exc = refused(["10.0.0.1", "8.8.8.8"])
    assert exc.target == "8.8.8.8"
    assert "8.8.8.8" in str(exc) and "private" in str(exc)


def test_loopback_without_allowlist_is_refused_and_allowed_with_it() -> None:
    exc = refused(["127.0.0.1"])
    assert exc.target == "127.0.0.1" and "loopback" in str(exc)
    scope = expand(["127.0.0.1"], [80], default_ports=PORTS, allowed=["127.0.0.0/8"])
    assert scope.addresses == ("127.0.0.1",)


@pytest.mark.parametrize("target", ["169.254.169.254", "169.254.0.0/24", "fe80::1"])
def test_link_local_and_cloud_metadata_are_refused(target: str) -> None:
    exc = refused([target])
    assert exc.target == target and "link-local" in str(exc)


@pytest.mark.parametrize("target", ["224.0.0.1", "0.0.0.0", "100.64.0.1"])
def test_multicast_unspecified_and_cgnat_are_refused(target: str) -> None:
    assert refused([target]).target == target


def test_hostname_resolving_to_a_public_address_is_refused() -> None:
    resolve = resolver({"rig-7.lan": ["10.0.0.9", "93.184.216.34"]})
    exc = refused(["rig-7.lan"], resolver=resolve)
    assert exc.target == "rig-7.lan" and "93.184.216.34" in str(exc)


def test_hostname_is_resolved_once_and_the_checked_address_is_scanned() -> None:
    resolve = resolver({"rig-7.lan": ["10.0.0.9"]})
    scope = expand(["rig-7.lan"], [80], default_ports=PORTS, resolver=resolve)
    assert scope.addresses == ("10.0.0.9",)
    assert resolve.calls == ["rig-7.lan"]  # type: ignore[attr-defined]


def test_hostname_that_does_not_resolve() -> None:
    exc = refused(["ghost.lan"], resolver=resolver({}))
    assert exc.target == "ghost.lan" and "resolve" in str(exc)


def test_localhost_by_name_is_loopback() -> None:
    exc = refused(["localhost"], resolver=resolver({"localhost": ["127.0.0.1"]}))
    assert exc.target == "localhost" and "loopback" in str(exc)


def test_a_slash_16_is_refused_before_expanding() -> None:
    exc = refused(["10.0.0.0/16"])
    assert exc.target == "10.0.0.0/16" and "/20" in str(exc)


def test_5000_addresses_are_refused() -> None:
    exc = refused(["10.0.0.1-10.0.19.137"])  # 5,001 addresses in one range
    assert exc.target == "10.0.0.1-10.0.19.137" and "4,096" in str(exc)
    exc = refused(["10.2.0.0/20", "10.3.0.0/20"])  # each fits, together they don't
    assert exc.target == "10.3.0.0/20"
    exc = refused(["10.0-19.0-255.1"])  # nmap-style, 5,120 addresses
    assert "4,096" in str(exc)


def test_300_ports_are_refused() -> None:
    exc = refused(["10.0.0.1"], ports=list(range(1000, 1300)))
    assert exc.field == "ports" and str(limits.MAX_PORTS) in str(exc)


@pytest.mark.parametrize("port", [0, 65536, -1, True])
def test_bad_ports(port: int) -> None:
    assert refused(["10.0.0.1"], ports=[port]).field == "ports"


@pytest.mark.parametrize(
    "target",
    [
        "not a host!",
        "10.0.0.300",
        "10.0.0.9-3",
        "10.0.0.1-10.0.0.0",
        "10.0.0.0/33",
        "10..0.1",
        "x" * 300,
        "10.0.0.1-256",
    ],
)
def test_malformed_targets_name_themselves(target: str) -> None:
    exc = refused([target], resolver=resolver({}))
    assert exc.target.startswith(target[:40])


def test_node_local_subnet_only_through_a_node() -> None:
    assert "fleet node" in str(refused([NODE_LOCAL]))
    scope = expand([NODE_LOCAL], [80], default_ports=PORTS, via_node=True)
    assert scope.node_local and scope.addresses == ()


def test_no_targets_and_too_many_targets() -> None:
    refused([])
    refused([f"10.0.0.{i % 250 + 1}" for i in range(limits.MAX_TARGETS + 1)])
