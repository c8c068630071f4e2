"""Middleware of the project itself (the accounts layer has its own)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config import views

_OPS_VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": views.healthz,
    "/readyz": views.readyz,
    "/metrics": views.metrics,
}


class OpsEndpointsMiddleware:
    """Answer /healthz, /readyz and /metrics before Host validation and the SSL redirect.

    Container health checks and Prometheus call them by IP or service name (``127.0.0.1:8000``,
    ``web:8000``), which ``ALLOWED_HOSTS`` rightly doesn't list; these views build nothing from
    the Host header, so checking it would only turn a healthy container into an unhealthy one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = _OPS_VIEWS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
