"""The OIDC flow's pages: start, callback, the provider sign-out hop, and the refusals.

mozilla-django-oidc does the protocol (state, nonce, PKCE S256, code exchange, RS256 check);
these subclasses take its endpoints from discovery at request time, and turn every failure into
a page that says what happened instead of a bare redirect.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django.contrib import auth, messages
from django.core import signing
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.sso import config
from accounts.sso.backend import REFUSAL_ATTRIBUTE
from accounts.sso.services import Refusal

SIGNED_OUT_SALT = "accounts.sso.signed-out"
SIGNED_OUT_MAX_AGE = 300


def unavailable(request: HttpRequest, problem: str, status: int = 503) -> HttpResponse:
    return render(request, "accounts/sso/unavailable.html", {"problem": problem}, status=status)


class SsoStartView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """``/oidc/authenticate/?next=…`` (``&prompt=none`` for a silent re-validation)."""

    get_settings = staticmethod(config.oidc_setting)

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():  # View.__init__; the parent would read endpoints here
            setattr(self, key, value)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = config.oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except config.SsoUnavailable as exc:
            return unavailable(request, str(exc))
        self.OIDC_RP_CLIENT_ID = config.oidc_setting("OIDC_RP_CLIENT_ID")
        response: HttpResponse = super().get(request)
        return response

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        return {"prompt": "none"} if request.GET.get("prompt") == "none" else {}


class SsoCallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """``/oidc/callback/``: the provider's redirect back (documented in docs/sso.md)."""

    get_settings = staticmethod(config.oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as exc:
            return unavailable(request, f"The sign-in answer was refused: {exc}", status=400)
        return response

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        session = self.request.session
        now = time.time()
        renew_at = now + config.oidc_setting("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS")
        expires = session.get("oidc_id_token_exp")
        if isinstance(expires, int | float):
            margin = min(60.0, max(0.0, (expires - now) / 5))
            renew_at = min(renew_at, expires - margin)  # re-validate before the ID token ends
        session["oidc_id_token_expiration"] = renew_at
        return response

    def login_failure(self) -> HttpResponse:
        request = self.request
        if request.user.is_authenticated:  # a refused re-validation ends the session here too
            auth.logout(request)
        refusal = getattr(request, REFUSAL_ATTRIBUTE, None)
        if isinstance(refusal, Refusal):
            return render(request, "accounts/sso/refused.html", {"refusal": refusal}, status=403)
        if isinstance(refusal, str):
            return unavailable(request, refusal, status=502)
        error = request.GET.get("error", "")
        if error in ("login_required", "interaction_required", "consent_required"):
            messages.info(request, "Your single sign-on session has ended. Sign in again.")
        elif error:
            messages.error(request, f"The identity provider refused the sign-in ({error[:80]}).")
        else:
            messages.error(
                request, "The single sign-on answer didn't match this browser's sign-in."
            )
        return redirect("account_login")


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send the browser so the provider's session ends too (RP-initiated logout),
    wrapped in our own signed page; ``None`` for a session that didn't come from SSO."""
    id_token = request.session.get("oidc_id_token")
    if not id_token or not config.enabled():
        return None
    endpoint = config.end_session_endpoint()
    if endpoint is None:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "client_id": config.oidc_setting("OIDC_RP_CLIENT_ID"),
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("account_login")),
        }
    )
    target = f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
    token = signing.dumps(target, salt=SIGNED_OUT_SALT)
    return f"{reverse('sso-signed-out')}?{urlencode({'to': token})}"


@declare(PUBLIC)
def signed_out(request: HttpRequest) -> HttpResponse:
    """Signed out here; now on to the provider. A page, not a redirect: the sign-out form's
    CSP (``form-action 'self'``) forbids a redirect chain that leaves this origin."""
    try:
        target = signing.loads(
            request.GET.get("to", ""), salt=SIGNED_OUT_SALT, max_age=SIGNED_OUT_MAX_AGE
        )
    except signing.BadSignature:
        return redirect("account_login")
    return render(request, "accounts/sso/signed_out.html", {"target": target})
