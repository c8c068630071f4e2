"""Node-owned miners are dialled by their node, never by this server: pairing them checks the
product's own address rule (private ranges by default), not the suite's "dial nothing but
loopback" guard (tests/conftest.py), so made-up 10.x / 192.168.x addresses pair here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _node_pairing_private_ranges(
    _dial_loopback_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet import netguard

    monkeypatch.setattr(netguard, "PRIVATE", netguard.DEFAULT_PRIVATE)
