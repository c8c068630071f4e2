"""The one rule for every dial (pure: no Django, no network)."""

from __future__ import annotations

import pytest

from fleet import netguard
from fleet.netguard import AddressRefused, check_dialable


@pytest.fixture(autouse=True)
def _product_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite refuses private ranges so nothing is dialled; here, the product's rule."""
    monkeypatch.setattr(netguard, "PRIVATE", netguard.DEFAULT_PRIVATE)


@pytest.mark.parametrize(
    "host", ["10.1.2.3", "172.16.0.9", "172.31.255.254", "192.168.4.5", "fd00::1"]
)
def test_private_ranges_are_allowed(host: str) -> None:
    assert str(check_dialable(host)) == host


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("8.8.8.8", "private range"),
        ("100.64.0.1", "private range"),  # CGNAT only when listed
        ("172.32.0.1", "private range"),
    ],
)
def test_everything_else_is_refused_with_the_reason(host: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        check_dialable(host)


def test_listed_networks_allow_more() -> None:
    assert str(check_dialable("127.0.0.5", ["127.0.0.0/8"])) == "127.0.0.5"
    assert str(check_dialable("100.64.0.1", ["100.64.0.0/10"])) == "100.64.0.1"
    with pytest.raises(AddressRefused):
        check_dialable("127.0.0.5", ["10.0.0.0/8"])


@pytest.mark.parametrize("host", ["rig-7.lan", "10.0.0.1:80", "", "1.2.3.4.5"])
def test_not_an_address_is_refused(host: str) -> None:
    with pytest.raises(AddressRefused):
        check_dialable(host)
