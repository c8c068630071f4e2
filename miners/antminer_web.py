"""The stock Antminer web CGI on port 80, behind HTTP Digest.

Separate from the RPC side because it has its own auth and failure modes: RPC on 4028 needs
no password (so status works with wrong credentials), the CGI does (so every write does).
"""

from __future__ import annotations

from typing import Any

from miners.base import as_dict
from miners.digest import Challenge, authorization, parse_challenge
from miners.errors import AuthFailed, BadResponse, Rejected, Unsupported
from miners.http import HttpClient, HttpReply, host_for_url
from miners.types import Credentials

WEB_PORT = 80
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "root"


class AntminerWeb:
    """Digest-authenticated CGI calls to one miner. The last challenge is reused (with an
    increasing nonce count) so steady traffic costs no extra 401 round trips."""

    def __init__(
        self,
        http: HttpClient,
        host: str,
        port: int,
        credentials: Credentials | None,
        challenge: Challenge | None = None,
    ) -> None:
        """`challenge`: a digest challenge this miner already sent (saves one 401)."""
        self.http = http
        self.host = host
        self.port = port
        self.credentials = credentials or Credentials(
            password=DEFAULT_PASSWORD, username=DEFAULT_USER
        )
        self._base = f"http://{host_for_url(host)}:{port}"
        self._challenge: Challenge | None = challenge

    @property
    def username(self) -> str:
        return self.credentials.username or DEFAULT_USER

    async def request(self, method: str, path: str, *, json_body: Any = None) -> HttpReply:
        """One CGI call; a second 401 (after answering a fresh challenge) is `AuthFailed`."""
        reply: HttpReply | None = None
        for _ in range(2):
            headers = None
            if self._challenge is not None:
                auth = authorization(
                    self._challenge, self.username, self.credentials.password, method, path
                )
                headers = {"Authorization": auth}
            reply = await self.http.request(
                method, self._base + path, headers=headers, json_body=json_body
            )
            if reply.status != 401:
                break
            challenge = parse_challenge(reply.headers.get("WWW-Authenticate"))
            if challenge is None:
                raise AuthFailed(f"{path}: 401 without a digest challenge", status=401)
            self._challenge = challenge
        assert reply is not None
        if reply.status == 401:
            raise AuthFailed(f"web login refused for user {self.username!r}", status=401)
        if reply.status in (404, 405, 501):
            raise Unsupported(f"{path}: HTTP {reply.status}", status=reply.status)
        if not 200 <= reply.status < 300:
            raise BadResponse(
                f"{path}: HTTP {reply.status} {reply.text()[:120]}", status=reply.status
            )
        return reply

    async def get_json(self, path: str) -> dict[str, Any]:
        reply = await self.request("GET", path)
        body = reply.json()
        if not isinstance(body, dict):
            raise BadResponse(f"{path}: expected a JSON object", status=reply.status)
        return body

    async def post_expecting(self, path: str, body: Any, *ok_codes: str) -> dict[str, Any]:
        """POST and insist on one of the firmware's success codes (M000, B000, P000…);
        anything else is `Rejected` with whatever message the firmware gave."""
        reply = await self.request("POST", path, json_body=body)
        result = as_dict(reply.json()) if reply.body.strip() else {}
        code = str(result.get("code", ""))
        if code in ok_codes or (not code and result.get("stats") == "success"):
            return result
        message = result.get("msg") or result.get("message") or result.get("stats") or "refused"
        raise Rejected(f"{path}: {message}", code=code or None, status=reply.status)
