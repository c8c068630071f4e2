from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone

from accounts.actor import client_ip, user_agent
from accounts.models import TrackedSession
from accounts.permissions import PUBLIC
from accounts.services.security import session_track

_TOUCH_EVERY = timedelta(seconds=60)
# Paths with their own authentication (DRF answers 401/403 as JSON; ops endpoints are public).
_EXEMPT_PREFIXES = (
    "/api/v1/",
    "/api/schema/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/",
    "/favicon.ico",
)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Anonymous visitors of any page go to sign-in; the API answers for itself."""

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if request.path.startswith(_EXEMPT_PREFIXES):
            return None
        # DRF marks every APIView login_not_required; a page built on one (the Swagger UI)
        # still declares who may see it, and that declaration wins.
        declared = getattr(view_func, "rw_permission", None)
        if declared and declared != PUBLIC and not request.user.is_authenticated:
            return self.handle_no_permission(request, view_func)
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Callable[..., Any]
    ) -> HttpResponseBase:
        """htmx can't follow a redirect into a full page; tell it where to go instead."""
        response = super().handle_no_permission(request, view_func)
        if request.headers.get("HX-Request") == "true":
            return HttpResponse(status=401, headers={"HX-Redirect": response["Location"]})
        return response


class TrackedSessionMiddleware:
    """Keeps the server-side session list current; a session deleted by a revoke is signed out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        key = request.session.session_key
        if user is not None and user.is_authenticated and key:
            tracked = (
                TrackedSession.objects.filter(session_key=key)
                .only("id", "last_seen_at", "user_id")
                .first()
            )
            if tracked is not None and tracked.user_id != user.pk:
                logout(request)
            elif tracked is None or timezone.now() - tracked.last_seen_at > _TOUCH_EVERY:
                session_track(
                    session_key=key,
                    user=user,
                    ip=client_ip(request),
                    user_agent=user_agent(request),
                )
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """CSP and Permissions-Policy on every response that doesn't set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=()"
        )
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
