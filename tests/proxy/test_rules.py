"""The pure rules: the permission map covers the spec, paths and headers are filtered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accounts.permissions import CATALOG
from proxy.headers import request_headers, response_headers
from proxy.pathmap import ADMIN, CREDENTIAL, POOLS, PROTOOS, classify
from proxy.paths import PathRefused, split

SPEC = Path(__file__).resolve().parents[2] / "specs/protoos-mdk-api-1.8.2.json"
METHODS = ("get", "put", "post", "delete", "patch")


def spec_operations() -> list[tuple[str, str]]:
    paths = json.loads(SPEC.read_text())["paths"]
    return [
        (method.upper(), path.removeprefix("/api/v1"))
        for path, ops in paths.items()
        for method in ops
        if method in METHODS
    ]


def test_every_spec_operation_is_classified_explicitly() -> None:
    missing = [op for op in spec_operations() if op not in PROTOOS]
    assert missing == []
    assert set(PROTOOS) == set(spec_operations())  # and nothing invented


def test_every_mapped_permission_is_in_the_catalog() -> None:
    for outcome in PROTOOS.values():
        assert outcome in (CREDENTIAL, POOLS) or outcome in CATALOG


@pytest.mark.parametrize(
    ("method", "path", "permission", "refusal"),
    [
        ("GET", "/system", "miner:read", None),
        ("GET", "/hashboards/HB123/7", "miner:read", None),
        ("GET", "/system/logs", "miner:download_logs", None),
        ("PUT", "/mining/target", "miner:set_power_target", None),
        ("POST", "/system/locate", "miner:blink_led", None),
        ("POST", "/pools/test-connection", "miner:update_pools", None),
        ("PUT", "/pools/2", None, POOLS),
        ("POST", "/pools", None, POOLS),
        ("PUT", "/auth/change-password", None, CREDENTIAL),
        ("POST", "/auth/login", None, CREDENTIAL),
        ("PUT", "/system/unlock", None, CREDENTIAL),
        ("GET", "/not/in/the/spec", "miner:read", None),
        ("POST", "/not/in/the/spec", ADMIN, None),
        ("DELETE", "/system", ADMIN, None),  # an unmapped write on a read-only path
    ],
)
def test_classify(method: str, path: str, permission: str | None, refusal: str | None) -> None:
    decision = classify("protoos", method, path)
    assert (decision.permission, decision.refusal) == (permission, refusal)


@pytest.mark.parametrize(
    "raw",
    [
        "/api-proxy/miners/1/api/v1/../../admin",
        "/api-proxy/miners/1/api/v1/./system",
        "/api-proxy/miners/1/api/v1/%2e%2e/system",
        "/api-proxy/miners/1/api/v1/%2E%2E/system",
        "/api-proxy/miners/1/api/v1%2fsystem",
        "/api-proxy/miners/1/api/v1%2Fsystem",
        "/api-proxy/miners/1/api/v1/%5csystem",
        "/api-proxy/miners/1/api/v1\\system",
        "/api-proxy/miners/1/api/v1/user@evil.example/",
        "/api-proxy/miners/1/api/v1/%40evil",
        "/api-proxy/miners/1/api/v1/sys\r\ntem",
        "/api-proxy/miners/1/api/v1/%0d%0aX:1",
        "/api-proxy/miners/1/api/v1//system",
        "/api-proxy/miners/1/api/v1/%252e%252e/",
        "/api-proxy/miners/1/api/v1/sys tem",
        "/api-proxy/miners/1/api/v1/%00",
        "/api-proxy/miners/1",
        "/api-proxy/miners/abc/api/v1/system",
        "/api-proxy/miners/1@127.0.0.1/api/v1/system",
    ],
)
def test_paths_that_normalisation_would_change_are_refused(raw: str) -> None:
    with pytest.raises(PathRefused):
        split(raw)


def test_a_plain_path_passes_as_sent() -> None:
    target = split("/api-proxy/miners/42/api/v1/hashboards/HB-1/3")
    assert (target.miner_id, target.path) == (42, "/api/v1/hashboards/HB-1/3")


def test_request_headers_are_an_allowlist() -> None:
    sent = request_headers(
        [
            ("Accept", "application/json"),
            ("Accept-Language", "de"),
            ("Content-Type", "application/json"),
            ("If-None-Match", '"x"'),
            ("Range", "bytes=0-9"),
            ("Cookie", "sessionid=s"),
            ("Authorization", "Token t"),
            ("X-CSRFToken", "c"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Host", "evil"),
            ("Host", "evil"),
            ("Connection", "keep-alive, Accept-Language"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Custom", "1"),
            ("User-Agent", "curl"),
        ]
    )
    assert sent == {
        "accept": "application/json",
        "content-type": "application/json",
        "if-none-match": '"x"',
        "range": "bytes=0-9",
    }


def test_response_headers_drop_credentials_and_add_ours() -> None:
    got = dict(
        response_headers(
            [
                ("Content-Type", "application/json"),
                ("Set-Cookie", "rig=1"),
                ("WWW-Authenticate", "Bearer"),
                ("Server", "lighttpd"),
                ("X-Powered-By", "PHP"),
                ("Access-Control-Allow-Origin", "*"),
                ("Connection", "close, X-Secret"),
                ("X-Secret", "1"),
                ("Transfer-Encoding", "chunked"),
                ("Cache-Control", "public, max-age=999"),
                ("ETag", '"e"'),
            ]
        )
    )
    assert got["content-type"] == "application/json" and got["etag"] == '"e"'
    for gone in ("set-cookie", "www-authenticate", "server", "x-powered-by", "x-secret"):
        assert gone not in got
    assert "access-control-allow-origin" not in got and "transfer-encoding" not in got
    assert got["cache-control"] == "no-store"
    assert got["x-content-type-options"] == "nosniff"
    assert got["content-security-policy"].startswith("sandbox")
    assert got["x-frame-options"] == "DENY"
