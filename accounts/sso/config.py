"""SSO settings and the provider's discovery document.

mozilla-django-oidc reads fixed setting names (``OIDC_OP_*``, ``OIDC_RP_*``); ``oidc_setting``
answers them from the contract's ``OIDC_*`` settings and from the discovery document of
``OIDC_ISSUER``, fetched once and cached. Nothing here runs at import or start-up, so a provider
that is down or misconfigured never stops the password sign-in (the break-glass path).
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache

DISCOVERY_PATH = "/.well-known/openid-configuration"
SIGN_ALGORITHM = "RS256"
_REQUIRED = ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
# mozilla-django-oidc's names for the discovery document's fields
_FROM_DISCOVERY = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class SsoUnavailable(Exception):
    """SSO is off, or the provider can't be reached or describes itself wrongly."""


def enabled() -> bool:
    return bool(issuer())


def issuer() -> str:
    return str(getattr(settings, "OIDC_ISSUER", "") or "").rstrip("/")


def client_secret() -> str:
    return str(getattr(settings, "OIDC_CLIENT_SECRET", "") or "")


def scopes() -> str:
    return " ".join(str(settings.OIDC_SCOPES).split()) or "openid email profile"


def _cache_key(value: str) -> str:
    return "sso:discovery:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def discovery() -> dict[str, Any]:
    """The issuer's discovery document (cached ``OIDC_DISCOVERY_CACHE_SECONDS``)."""
    configured = issuer()
    if not configured:
        raise SsoUnavailable("Single sign-on is not configured (OIDC_ISSUER is empty).")
    if not configured.startswith(("https://", "http://")):
        raise SsoUnavailable(f"OIDC_ISSUER must be an https:// URL, not {configured!r}.")
    if not settings.OIDC_CLIENT_ID:
        raise SsoUnavailable("OIDC_CLIENT_ID is empty: register a client at the provider.")
    key = _cache_key(configured)
    cached = cache.get(key)
    if isinstance(cached, dict):
        return cached
    document = _fetch(configured)
    cache.set(key, document, settings.OIDC_DISCOVERY_CACHE_SECONDS)
    return document


def forget_discovery() -> None:
    if issuer():
        cache.delete(_cache_key(issuer()))


def _fetch(configured: str) -> dict[str, Any]:
    url = configured + DISCOVERY_PATH
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SsoUnavailable(f"The identity provider can't be reached ({url}).") from exc
    if not isinstance(document, dict):
        raise SsoUnavailable(f"{url} is not a discovery document.")
    if str(document.get("issuer", "")).rstrip("/") != configured:
        raise SsoUnavailable(
            f"The provider calls itself {document.get('issuer')!r}, not {configured!r}: "
            "set OIDC_ISSUER to exactly its issuer."
        )
    missing = [name for name in _REQUIRED if not isinstance(document.get(name), str)]
    if missing:
        raise SsoUnavailable(f"The discovery document lacks {', '.join(missing)}.")
    algorithms = document.get("id_token_signing_alg_values_supported") or [SIGN_ALGORITHM]
    if SIGN_ALGORITHM not in algorithms:
        raise SsoUnavailable("The provider doesn't sign ID tokens with RS256.")
    methods = document.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise SsoUnavailable("The provider doesn't support PKCE with S256.")
    return document


def end_session_endpoint() -> str | None:
    try:
        value = discovery().get("end_session_endpoint")
    except SsoUnavailable:
        return None
    return value if isinstance(value, str) and value else None


_FIXED: dict[str, Any] = {
    "OIDC_RP_SIGN_ALGO": SIGN_ALGORITHM,
    "OIDC_USE_PKCE": True,
    "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
    "OIDC_USE_NONCE": True,
    "OIDC_STORE_ID_TOKEN": True,
    "OIDC_STORE_ACCESS_TOKEN": False,
    "OIDC_CREATE_USER": False,  # provisioning is accounts.sso.services.sso_sign_in's decision
    "OIDC_VERIFY_SSL": True,
    "OIDC_TOKEN_USE_BASIC_AUTH": False,
    "OIDC_ALLOW_UNSECURED_JWT": False,
    "OIDC_RP_IDP_SIGN_KEY": None,
    "OIDC_AUTH_REQUEST_EXTRA_PARAMS": {},
    "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/",
}


def oidc_setting(attr: str, *default: Any) -> Any:
    """What mozilla-django-oidc's ``get_settings(attr)`` should answer."""
    if attr in _FROM_DISCOVERY:
        return discovery()[_FROM_DISCOVERY[attr]]
    if attr in _FIXED:
        return _FIXED[attr]
    derived: dict[str, Any] = {
        "OIDC_RP_CLIENT_ID": settings.OIDC_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": client_secret(),
        "OIDC_RP_SCOPES": scopes(),
        "OIDC_TIMEOUT": settings.OIDC_TIMEOUT_SECONDS,
        "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS": settings.OIDC_RENEW_SECONDS,
    }
    if attr in derived:
        return derived[attr]
    return getattr(settings, attr, *default)
