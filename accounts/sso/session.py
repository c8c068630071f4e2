"""Keeping an SSO session honest: re-validate before the ID token expires.

Pages get a silent (``prompt=none``) round trip to the provider; XHR, htmx and API calls a JSON
401 with the URL that re-authenticates; WebSockets ask ``sso_login_current`` and close with
4401 (the page then reloads and re-authenticates).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.sso import config
from accounts.sso.backend import BACKEND_PATH

EXPIRATION_KEY = "oidc_id_token_expiration"
_EXEMPT = ("/oidc/", "/accounts/logout/", "/static/", "/healthz", "/readyz", "/metrics")


def sso_login_current(session: Mapping[str, Any] | None) -> bool:
    """False for an SSO login whose ID token is due for re-validation (or SSO switched off
    under it); True for every other session, password ones included."""
    if session is None or session.get(BACKEND_SESSION_KEY) != BACKEND_PATH:
        return True
    if not config.enabled():
        return False
    expiration = session.get(EXPIRATION_KEY, 0)
    return isinstance(expiration, int | float) and expiration > time.time()


def reauth_url(next_path: str, *, silent: bool = True) -> str:
    query = {"next": next_path} | ({"prompt": "none"} if silent else {})
    return f"{reverse('oidc_authentication_init')}?{urlencode(query)}"


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or request.headers.get("HX-Request") == "true"
        or ("application/json" in accept and "text/html" not in accept)
    )


def _page_path(request: HttpRequest) -> str:
    """Where the user is: the page behind an htmx/XHR call, else this request."""
    for header in ("HX-Current-URL", "Referer"):
        value = request.headers.get(header, "")
        if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}):
            parts = urlsplit(value)
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return "/"


class SsoSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is None
            or not user.is_authenticated
            or request.path.startswith(_EXEMPT)
            or sso_login_current(request.session)
        ):
            return self.get_response(request)
        if _wants_json(request):
            url = reauth_url(_page_path(request))
            response = JsonResponse(
                {
                    "detail": "Your sign-in has expired. Sign in again.",
                    "code": "reauthenticate",
                    "reauth_url": url,
                },
                status=401,
            )
            response["WWW-Authenticate"] = 'Session realm="rigwarden"'
            if request.headers.get("HX-Request") == "true":
                response["HX-Redirect"] = url
            return response
        if request.method in ("GET", "HEAD"):
            return HttpResponseRedirect(reauth_url(request.get_full_path()))
        # a form post: a redirect chain leaving this origin would break the form's CSP
        return render(
            request,
            "accounts/sso/reauth.html",
            {"url": reauth_url(_page_path(request), silent=False)},
            status=401,
        )
