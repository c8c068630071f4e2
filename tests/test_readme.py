"""The README's introduction and "What you get" describe what exists, not the roadmap."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from django.urls import resolve

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
# feature → (how the README would claim it, whether it exists in this checkout)
FEATURES = {
    "discovery": (r"\bfind miners\b|\bdiscover", importlib.util.find_spec("discovery")),
    "proxy": (r"\bproxy\b|web API .* through the server", importlib.util.find_spec("proxy")),
    "terminals": (r"\bterminals?\b|\bSSH\b", importlib.util.find_spec("terminals")),
    "fleet nodes": (r"\bfleet[- ]nodes?\b|\bagent\b", importlib.util.find_spec("fleetnode")),
    "single sign-on": (
        r"\bsingle sign-on\b|\bSSO\b|\bOIDC\b",
        importlib.util.find_spec("accounts.sso.backend"),
    ),
    "miner actions": (
        r"\breboot\b|\bpools\b|\bcooling\b|\blocate LED\b",
        importlib.util.find_spec("fleet"),
    ),
}


def _claims() -> str:
    """Everything before the configuration table: the pitch, the commands, what you get."""
    return README.split("## Configuration", 1)[0]


def test_the_readme_claims_no_feature_that_is_not_built() -> None:
    text = _claims()
    claimed = {
        name
        for name, (pattern, exists) in FEATURES.items()
        if not exists and re.search(pattern, text, re.I)
    }
    assert not claimed, f"README describes unbuilt features: {sorted(claimed)}"


def test_the_readme_says_the_rest_grows_and_mentions_the_sites_page() -> None:
    text = _claims()
    assert "grows with each feature" in text
    assert "Sites page" in text
    assert resolve("/sites/").url_name == "sites"
