"""A real OpenID provider (npm ``oidc-provider``, started by ``provider.mjs``) on 127.0.0.2,
and the settings that point this server at it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("provider.mjs")
CLIENT_ID = "rigwarden-tests"
CLIENT_SECRET = "a-client-secret-for-tests-only-0123456789"
SCOPES = "openid email profile groups"


@dataclass
class Provider:
    issuer: str
    config_path: Path
    config: dict[str, Any]
    process: subprocess.Popen[str]

    def set_users(self, users: dict[str, dict[str, Any]]) -> None:
        """The provider reads its users again at every lookup: this is its user directory."""
        self.config["users"] = users
        self.config_path.write_text(json.dumps(self.config))

    def set_user(self, login: str, **claims: Any) -> None:
        self.set_users({**self.config["users"], login: {"sub": f"sub-{login}", **claims}})


def start_provider(directory: Path, base_url: str) -> Provider:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "oidc-provider").exists():
        pytest.fail("node and the npm package oidc-provider are needed: make assets (npm ci)")
    config = {
        "host": "127.0.0.2",
        "port": 0,
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [f"{base_url}/oidc/callback/"],
            "post_logout_redirect_uris": [f"{base_url}/accounts/login/"],
        },
        "users": {},
    }
    path = directory / "provider.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [node, str(SCRIPT), str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if line.startswith("READY "):
            return Provider(line.split()[1], path, config, process)
    process.kill()
    pytest.fail(f"oidc-provider did not start: {line!r}")


@pytest.fixture(scope="module")
def provider_process(
    tmp_path_factory: pytest.TempPathFactory, live_server: Any
) -> Iterator[Provider]:
    provider = start_provider(tmp_path_factory.mktemp("oidc"), live_server.url)
    yield provider
    provider.process.terminate()
    provider.process.wait(timeout=10)


@pytest.fixture
def provider(provider_process: Provider) -> Provider:
    provider_process.set_users({})
    return provider_process


def point_at(settings: Any, issuer: str, *, jit: bool = False, org: str = "alpha") -> None:
    settings.OIDC_ISSUER = issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_SCOPES = SCOPES
    settings.OIDC_JIT = jit
    settings.OIDC_ORG = org


@pytest.fixture
def sso(settings: Any, provider: Provider) -> Provider:
    """This server pointed at the provider, joining SSO users to org ``alpha``; JIT off."""
    point_at(settings, provider.issuer)
    return provider
