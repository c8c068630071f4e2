"""The authentication backend: mozilla-django-oidc's code flow, decided by ``sso_sign_in``.

Django builds every backend for every ``authenticate()`` (password sign-ins included) and on
every request of an SSO session (``get_user``), so nothing here may reach the provider before
the OIDC callback actually asks for it.
"""

from __future__ import annotations

from typing import Any

import jwt
import requests
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.actor import client_ip, user_agent
from accounts.errors import ApplicationError
from accounts.models import User
from accounts.sso import config
from accounts.sso.services import Attempt, sso_sign_in

BACKEND_PATH = "accounts.sso.backend.SsoBackend"
REFUSAL_ATTRIBUTE = "rw_sso_refusal"
_LAZY = {
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
    "OIDC_RP_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_RP_SIGN_ALGO",
    "OIDC_RP_IDP_SIGN_KEY",
}


def _problem(exc: Exception) -> str:
    if isinstance(exc, config.SsoUnavailable | ApplicationError):
        return str(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, requests.HTTPError) and status in (400, 401):
        return (
            f"The provider refused this server's client (HTTP {status}): check OIDC_CLIENT_ID, "
            "OIDC_CLIENT_SECRET and the redirect URL registered at the provider."
        )
    return f"The identity provider's answer couldn't be used ({type(exc).__name__})."


class SsoBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    get_settings = staticmethod(config.oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = User  # the parent would read the provider's endpoints here

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY:
            return config.oidc_setting(name)
        raise AttributeError(name)

    def authenticate(self, request: Any, **kwargs: Any) -> User | None:
        """Only the OIDC callback (which passes the nonce) signs in here; a password form that
        happens to carry ``code`` and ``state`` in its URL never reaches the provider."""
        if request is None or "nonce" not in kwargs or not config.enabled():
            return None
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (
            config.SsoUnavailable,
            OSError,
            ValueError,
            jwt.PyJWTError,
            ApplicationError,
        ) as exc:
            setattr(request, REFUSAL_ATTRIBUTE, _problem(exc))
            return None
        except SuspiciousOperation as exc:  # a token that fails a check: signature, iss, aud…
            setattr(request, REFUSAL_ATTRIBUTE, f"The ID token was refused: {exc}")
            return None
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The parent checks the signature (RS256 only), expiry and nonce; the issuer and the
        audience are checked here."""
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        if str(payload.get("iss", "")).rstrip("/") != config.issuer():
            raise SuspiciousOperation("ID token from another issuer")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        client_id = config.oidc_setting("OIDC_RP_CLIENT_ID")
        if client_id not in audiences or (len(audiences) > 1 and payload.get("azp") != client_id):
            raise SuspiciousOperation("ID token for another client")
        if not isinstance(payload.get("sub"), str) or not payload["sub"]:
            raise SuspiciousOperation("ID token without a subject")
        return payload

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(userinfo, dict):
            raise SuspiciousOperation("userinfo is not an object")
        if "sub" in userinfo and userinfo["sub"] != payload["sub"]:
            raise SuspiciousOperation("userinfo is about another subject")
        request = self.request
        self.request.session["oidc_id_token_exp"] = payload.get("exp")
        result = sso_sign_in(
            Attempt(
                issuer=config.issuer(),
                subject=payload["sub"],
                claims={**payload, **userinfo},
                ip=client_ip(request),
                user_agent=user_agent(request),
            )
        )
        if result.refusal is not None:
            setattr(request, REFUSAL_ATTRIBUTE, result.refusal)
            return None
        user = result.user
        if user is not None:
            user.rw_sso_identity = result.identity  # type: ignore[attr-defined]  # the audit
        return user

    def get_user(self, user_id: Any) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()
