"""HTTP session to one ProtoOS rig: scheme discovery, bearer token, error bodies.

Kept apart from the device logic because the server's proxy needs exactly this (scheme,
token, one renewal on 401, the default-password gate) without the status parsing.
"""

from __future__ import annotations

import json
from typing import Any

from miners.base import as_dict
from miners.errors import (
    AuthFailed,
    BadResponse,
    DefaultPasswordActive,
    MinerError,
    Rejected,
    Unreachable,
    Unsupported,
)
from miners.http import HttpClient, HttpReply, host_for_url, is_refused
from miners.tokens import Grant, Token, TokenCache
from miners.types import Credentials

API = "/api/v1"
FACTORY_PASSWORD = "proto"
DEFAULT_PASSWORD_CODE = "DEFAULT_PASSWORD_ACTIVE"


def _code(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def firmware_message(reply: HttpReply) -> tuple[str, str | None]:
    """(message, code) from any of the three error shapes ProtoOS uses: the spec's
    ``{"message"}`` (sometimes with a top-level ``code``), the firmware's
    ``{"error": {"code", "message"}}`` (or ``{"error": "text"}``), or plain text — in which a
    bare machine code such as ``DEFAULT_PASSWORD_ACTIVE`` is still recognised."""
    fallback = f"HTTP {reply.status}"
    try:
        body = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        text = reply.text().strip()
        code = DEFAULT_PASSWORD_CODE if DEFAULT_PASSWORD_CODE in text else None
        return (text[:300] or fallback), code
    if isinstance(body, str) and body.strip():
        return body.strip()[:300], None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = _code(error.get("code"))
            message = error.get("message") or body.get("message")
            return str(message or code or fallback), code
        if isinstance(error, str) and error:
            return str(body.get("message") or error), _code(body.get("code"))
        if body.get("message"):
            return str(body["message"]), _code(body.get("code"))
        if body.get("code") is not None:
            return str(body["code"]), _code(body["code"])
    return fallback, None


def error_for(reply: HttpReply, what: str) -> MinerError:
    """The typed error for a non-2xx reply, carrying the firmware's message."""
    message, code = firmware_message(reply)
    text = f"{what}: {message}"
    status = reply.status
    if code == DEFAULT_PASSWORD_CODE:
        return DefaultPasswordActive(text, code=code, status=status)
    if status in (401, 403):
        return AuthFailed(text, code=code, status=status)
    if status in (404, 405, 501):
        return Unsupported(text, code=code, status=status)
    if status in (400, 409, 422, 503):
        return Rejected(text, code=code, status=status)
    return BadResponse(text, code=code, status=status)


PLAIN_HTTP_PORTS = frozenset({80, 8080})
"""Ports where an unknown rig is asked over plain http first (`ProtoOSClient.schemes_to_try`)."""


class ProtoOSClient:
    """Requests to one rig. `scheme` None means "not known yet": the first request tries
    https (plain http first on 80 and 8080), then the other scheme on the same port, and
    remembers what answered."""

    def __init__(
        self,
        http: HttpClient,
        tokens: TokenCache,
        host: str,
        port: int,
        *,
        scheme: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.host = host
        self.port = port
        self.scheme = scheme
        self.credentials = credentials or Credentials(password=FACTORY_PASSWORD)
        self._netloc = f"{host_for_url(host)}:{port}"
        self.gated: set[tuple[str, str]] = set()
        """(method, path) of writes the rig refused with DEFAULT_PASSWORD_ACTIVE and that have
        not succeeded since: non-empty means the default-password gate is up."""

    @property
    def default_password_gate(self) -> bool:
        """Whether a write was refused with 403 DEFAULT_PASSWORD_ACTIVE (and not since
        accepted, nor the password changed)."""
        return bool(self.gated)

    @property
    def token_key(self) -> str:
        return f"{self.host}:{self.port}|{self.credentials.cache_key}"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpReply:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        if self.scheme is not None:
            url = f"{self.scheme}://{self._netloc}{API}{path}"
            return await self.http.request(
                method, url, headers=headers, json_body=json_body, params=params
            )
        first, second = self.schemes_to_try()
        try:
            reply = await self.http.request(
                method,
                f"{first}://{self._netloc}{API}{path}",
                headers=headers,
                json_body=json_body,
                params=params,
            )
            self.scheme = first
            return reply
        except Unreachable as exc:
            if is_refused(exc):
                raise
        reply = await self.http.request(
            method,
            f"{second}://{self._netloc}{API}{path}",
            headers=headers,
            json_body=json_body,
            params=params,
        )
        self.scheme = second
        return reply

    def schemes_to_try(self) -> tuple[str, str]:
        """The scheme order while the rig's is unknown: plain http first on the ports web
        servers serve it on (80, 8080: a TLS handshake there only fails), https first
        everywhere else (443 and any other port: the firmware's default). Either way the
        other one is tried next on the same port, so no rig is missed."""
        return ("http", "https") if self.port in PLAIN_HTTP_PORTS else ("https", "http")

    async def login(self) -> str:
        """A fresh access token (callers go through the shared cache, not here)."""
        return (await self.login_grant()).access

    async def login_grant(self) -> Grant:
        """`POST /auth/login`: access and refresh token. Every login may revoke the access
        token other clients of this rig hold, so the cache calls this only when a refresh
        can't be had."""
        reply = await self._send(
            "POST", "/auth/login", json_body={"password": self.credentials.password}
        )
        if reply.status in (401, 403):
            message, code = firmware_message(reply)
            raise AuthFailed(f"login refused: {message}", code=code, status=reply.status)
        if not 200 <= reply.status < 300:
            raise error_for(reply, "login")
        body = as_dict(reply.json())
        token, refresh = body.get("access_token"), body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise BadResponse("login reply has no access_token", status=reply.status)
        return Grant(token, refresh if isinstance(refresh, str) and refresh else None)

    async def refresh_grant(self, refresh_token: str) -> Grant:
        """`POST /auth/refresh {refresh_token}`: a new access token without a login (so
        without revoking anybody's token). Any refusal is an error; the cache then logs in."""
        reply = await self._send(
            "POST", "/auth/refresh", json_body={"refresh_token": refresh_token}
        )
        if reply.status in (401, 403):
            message, code = firmware_message(reply)
            raise AuthFailed(f"refresh refused: {message}", code=code, status=reply.status)
        if not 200 <= reply.status < 300:
            raise error_for(reply, "refresh")
        token = as_dict(reply.json()).get("access_token")
        if not isinstance(token, str) or not token:
            raise BadResponse("refresh reply has no access_token", status=reply.status)
        return Grant(token)

    async def token(self) -> str:
        """The shared access token for this rig and credentials (renewed as needed)."""
        return await self.tokens.obtain(self.token_key, self.login_grant, self.refresh_grant)

    async def _renew(self, failed: str, *, force_login: bool = False) -> Token:
        return await self.tokens.renew(
            self.token_key, failed, self.login_grant, self.refresh_grant, force_login=force_login
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpReply:
        """One call; non-2xx raises the typed error. With `auth`, a 401 renews the token once
        (refresh first, else login; shared with concurrent callers) and retries once; if a
        refreshed token is refused too, one login and one more try."""
        if not auth:
            reply = await self._send(method, path, json_body=json_body, params=params)
        else:
            token = await self.token()
            reply = await self._send(method, path, token=token, json_body=json_body, params=params)
            if reply.status == 401:
                renewed = await self._renew(token)
                reply = await self._send(
                    method, path, token=renewed.access, json_body=json_body, params=params
                )
                if reply.status == 401 and renewed.via == "refresh":
                    renewed = await self._renew(renewed.access, force_login=True)
                    reply = await self._send(
                        method, path, token=renewed.access, json_body=json_body, params=params
                    )
        if not 200 <= reply.status < 300:
            error = error_for(reply, f"{method} {path}")
            if isinstance(error, DefaultPasswordActive):
                self.gated.add((method, path))
            raise error
        self.gated.discard((method, path))
        return reply

    async def get_json(
        self, path: str, *, auth: bool = True, params: dict[str, str] | None = None
    ) -> Any:
        """Parsed JSON body, or None for 204 No Content."""
        reply = await self.request("GET", path, auth=auth, params=params)
        return None if reply.status == 204 or not reply.body else reply.json()
