from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.actor import client_ip
from accounts.services.tokens import api_token_authenticate


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <secret>`` — hashed lookup, expiry and revocation checked each time."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Token <token>'."
            )
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Token must be ASCII.") from exc
        token = api_token_authenticate(secret, ip=client_ip(request))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        user = token.user
        user.rw_token_org = token.org_id  # grants_for: the token's org only, nothing elsewhere
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`",
        }
