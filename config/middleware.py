"""Middleware of the project itself (the accounts layer has its own)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from config import views

# The server (daphne: Twisted's HTTP channel) drops the connection, without an answer, on a
# request line over 16 KiB and answers a bare 400 when the request line plus headers pass
# 16 KiB. Below that, a query string over this size is refused here with a clear 414.
MAX_QUERY_STRING_BYTES = 8192

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


class QueryStringLimitMiddleware:
    """A query string over ``MAX_QUERY_STRING_BYTES``: 414 (JSON under ``/api/``), before any
    view parses it. No list filter, cursor or page needs that much."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if len(query) > MAX_QUERY_STRING_BYTES:
            detail = f"The query string is over {MAX_QUERY_STRING_BYTES} bytes."
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": detail}, status=414)
            return HttpResponse(detail + "\n", status=414, content_type="text/plain")
        return self.get_response(request)
