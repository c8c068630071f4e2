"""The node's REST calls to the server (``/api/v1/node-gateway/…``), with typed errors.

Server replies are untrusted like everything else: bodies are capped, must be JSON objects,
and the fields the node uses are type-checked here.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetnode import __version__
from fleetnode.protocol import b64decode, b64encode, public_bytes

MAX_BODY = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=20, connect=10)
PREFIX = "/api/v1/node-gateway"


class GatewayError(Exception):
    """The server answered with an error (``status``) or not at all (``status`` 0)."""

    def __init__(self, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


def normalize_server(url: str, *, allow_http: bool = False) -> str:
    """``https://host[:port]`` without a trailing slash; plain http only for loopback (or
    when the operator insists), since the api key travels in every session request."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"server must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ValueError("refusing plain http to a remote server; use https (or --allow-http)")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ws_url(server: str) -> str:
    scheme, rest = server.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/nodes/control/"


def ssl_context(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def _string(body: dict[str, Any], name: str, limit: int = 4096) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise GatewayError(f"the server's reply has no valid {name!r}", 200, body)
    return value


def reason(body: dict[str, Any]) -> str:
    """The server's own words for an error (DRF: ``detail`` or field errors)."""
    if isinstance(body.get("detail"), str):
        return str(body["detail"])[:300]
    parts = [f"{k}: {v}" for k, v in body.items() if k != "status"]
    return "; ".join(parts)[:300] or "no reason given"


@dataclass(frozen=True, slots=True)
class Registration:
    node_id: int
    fingerprint: str
    status: str


@dataclass(frozen=True, slots=True)
class SessionToken:
    token: str
    expires_at: float


class Gateway:
    def __init__(self, server: str, *, ca_file: str | None = None) -> None:
        self.server = server
        self.ssl = ssl_context(ca_file)

    async def _post(
        self, path: str, body: dict[str, Any], *, api_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
                http.post(
                    f"{self.server}{PREFIX}/{path}", json=body, headers=headers, ssl=self.ssl
                ) as reply,
            ):
                raw = await reply.content.read(MAX_BODY + 1)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise GatewayError(f"can't reach {self.server}: {exc or type(exc).__name__}") from exc
        if len(raw) > MAX_BODY:
            raise GatewayError(f"{path}: reply over {MAX_BODY} bytes", status)
        try:
            import json

            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"detail": raw[:200].decode("utf-8", "replace")}
        if not isinstance(data, dict):
            data = {"detail": str(data)[:200]}
        if status >= 400:
            raise GatewayError(f"{path}: HTTP {status}: {reason(data)}", status, data)
        return status, data

    async def register(self, key: Ed25519PrivateKey, *, code: str, name: str) -> Registration:
        body = {
            "code": code,
            "name": name,
            "hostname": socket.gethostname()[:253],
            "agent_version": __version__,
            "identity_key": b64encode(public_bytes(key)),
            "proof": b64encode(key.sign(code.encode("utf-8"))),
        }
        _, data = await self._post("register", body)
        node_id = data.get("node_id")
        if not isinstance(node_id, int) or isinstance(node_id, bool):
            raise GatewayError("the server's reply has no valid node_id", 200, data)
        return Registration(node_id, _string(data, "fingerprint", 64), str(data.get("status", "")))

    async def credentials(self, key: Ed25519PrivateKey, *, node_id: int) -> str:
        ts = int(time.time())
        sig = b64encode(key.sign(f"{node_id}|{ts}".encode()))
        _, data = await self._post("credentials", {"node_id": node_id, "ts": ts, "sig": sig})
        return _string(data, "api_key")

    async def session(self, key: Ed25519PrivateKey, *, api_key: str) -> SessionToken:
        _, begun = await self._post("session/begin", {}, api_key=api_key)
        challenge = _string(begun, "challenge", 512)
        try:
            raw = b64decode(challenge, field="challenge")
        except ValueError as exc:
            raise GatewayError(str(exc), 200, begun) from None
        if len(raw) < 32:
            raise GatewayError("the server's challenge is shorter than 32 bytes", 200, begun)
        body = {"challenge": challenge, "sig": b64encode(key.sign(raw))}
        _, done = await self._post("session/complete", body, api_key=api_key)
        return SessionToken(_string(done, "session_token"), parse_time(done.get("expires_at")))


def parse_time(value: Any, *, default_ttl: float = 15 * 60) -> float:
    """Unix seconds from a number or an ISO 8601 string (the server may send either)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time() + default_ttl
