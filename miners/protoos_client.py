"""HTTP session to one ProtoOS rig: scheme discovery, bearer token, error bodies.

Kept apart from the device logic because the server's proxy needs exactly this (scheme,
token, one re-login on 401) without the status parsing.
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
from miners.tokens import TokenCache
from miners.types import Credentials

API = "/api/v1"
FACTORY_PASSWORD = "proto"
DEFAULT_PASSWORD_CODE = "DEFAULT_PASSWORD_ACTIVE"


def firmware_message(reply: HttpReply) -> tuple[str, str | None]:
    """(message, code) from any of the three error shapes ProtoOS uses: the spec's
    ``{"message"}``, the firmware's ``{"error": {"code", "message"}}``, or plain text."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        text = reply.text().strip()
        return (text[:300] or f"HTTP {reply.status}"), None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            code = str(code) if code is not None else None
            return str(error.get("message") or code or f"HTTP {reply.status}"), code
        if isinstance(error, str):
            return error, None
        if "message" in body:
            code = body.get("code")
            return str(body["message"]), str(code) if code is not None else None
    return f"HTTP {reply.status}", None


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


class ProtoOSClient:
    """Requests to one rig. `scheme` None means "not known yet": the first request tries
    https, then plain http on the same port, and remembers what answered."""

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
        try:
            reply = await self.http.request(
                method,
                f"https://{self._netloc}{API}{path}",
                headers=headers,
                json_body=json_body,
                params=params,
            )
            self.scheme = "https"
            return reply
        except Unreachable as exc:
            if is_refused(exc):
                raise
        reply = await self.http.request(
            method,
            f"http://{self._netloc}{API}{path}",
            headers=headers,
            json_body=json_body,
            params=params,
        )
        self.scheme = "http"
        return reply

    async def login(self) -> str:
        """A fresh access token (callers go through the shared cache, not here)."""
        reply = await self._send(
            "POST", "/auth/login", json_body={"password": self.credentials.password}
        )
        if reply.status in (401, 403):
            message, code = firmware_message(reply)
            raise AuthFailed(f"login refused: {message}", code=code, status=reply.status)
        if not 200 <= reply.status < 300:
            raise error_for(reply, "login")
        token = as_dict(reply.json()).get("access_token")
        if not isinstance(token, str) or not token:
            raise BadResponse("login reply has no access_token", status=reply.status)
        return token

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpReply:
        """One call; non-2xx raises the typed error. With `auth`, a 401 drops the token,
        logs in once more (shared with concurrent callers) and retries once."""
        if not auth:
            reply = await self._send(method, path, json_body=json_body, params=params)
        else:
            key = self.token_key
            token = await self.tokens.obtain(key, self.login)
            reply = await self._send(method, path, token=token, json_body=json_body, params=params)
            if reply.status == 401:
                self.tokens.invalidate(key, token)
                token = await self.tokens.obtain(key, self.login)
                reply = await self._send(
                    method, path, token=token, json_body=json_body, params=params
                )
        if not 200 <= reply.status < 300:
            raise error_for(reply, f"{method} {path}")
        return reply

    async def get_json(
        self, path: str, *, auth: bool = True, params: dict[str, str] | None = None
    ) -> Any:
        """Parsed JSON body, or None for 204 No Content."""
        reply = await self.request("GET", path, auth=auth, params=params)
        return None if reply.status == 204 or not reply.body else reply.json()
