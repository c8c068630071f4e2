"""API rate limits: one bucket per token, per signed-in user (session) and per anonymous address.

A script on a token can't starve its owner's browser session, and the owner's tokens don't share
one bucket. The rates are ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (README "Configuration":
``API_RATE_TOKEN``, ``API_RATE_USER``, ``API_RATE_ANON``); a scope whose rate is None is not
limited. Over the rate: 429 ``{"detail"}`` with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.actor import client_ip
from accounts.models import ApiToken


class _ScopedRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # DRF reads the rates once, at import; reading them per request lets settings overrides
        # (and tests) apply.
        rates: dict[str, str | None] = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
        return rates.get(str(self.scope))

    def bucket(self, ident: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenRateThrottle(_ScopedRateThrottle):
    scope = "token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        return self.bucket(token.pk) if isinstance(token, ApiToken) else None


class UserRateThrottle(_ScopedRateThrottle):
    """Signed in with a session (token requests have their own bucket)."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken) or not request.user.is_authenticated:
            return None
        return self.bucket(request.user.pk)


class AnonRateThrottle(_ScopedRateThrottle):
    """Not signed in (the schema, and anything public): by client address, proxies believed
    only when ``TRUSTED_PROXIES`` lists them."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user.is_authenticated:
            return None
        return self.bucket(client_ip(request) or "unknown")
