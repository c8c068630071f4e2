"""Project-level views: ops endpoints, the API index, the favicon and the admin's sign-in."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import defaults
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from accounts.api.urls import router
from accounts.permissions import PUBLIC
from accounts.routes import declare
from fleet.api.urls import router as fleet_router


@declare(PUBLIC)
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database: {type(exc).__name__}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"redis: {type(exc).__name__}"
    return None


@declare(PUBLIC)
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    problems = [p for p in (_check_database(), _check_redis()) if p]
    checks = {"database": "ok", "redis": "ok" if settings.REDIS_URL else "not configured"}
    for problem in problems:
        checks[problem.split(":", 1)[0]] = problem.split(":", 1)[1].strip()
    return JsonResponse(
        {"status": "ok" if not problems else "unavailable", "checks": checks},
        status=503 if problems else 200,
    )


@declare(PUBLIC)
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: the process's own metrics (requests, database, cache, poller, nodes by
    state), which carry no org or site. The per-org/site fleet gauges are tenants' business
    figures: they are added only for a scrape that presents ``METRICS_TOKEN`` as a bearer token.
    With ``METRICS_TOKEN`` set, a scrape without it is refused altogether (401)."""
    from django_prometheus.exports import ExportToDjangoView

    from fleet.observability import tenant_exposition

    expected = settings.METRICS_TOKEN
    if expected:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return HttpResponse(
                "metrics need Authorization: Bearer <METRICS_TOKEN>\n",
                status=401,
                content_type="text/plain",
            )
    response: HttpResponse = ExportToDjangoView(request)
    if expected:  # the token was presented (checked above)
        response.content = response.content + tenant_exposition()
    return response


def swagger_csp(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Swagger UI's page carries one inline <style>; allow inline styles there and nowhere else."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY.replace(
            "style-src 'self'", "style-src 'self' 'unsafe-inline'"
        )
        return response

    return wrapped


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An unknown URL under /api/ answers in JSON like every other API error; people get the page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


@declare(PUBLIC)
def admin_login(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    """Stands in for the admin's own sign-in page: one sign-in path (lockout, MFA, audit).

    Anonymous visitors go to our sign-in and come back; staff go on; a signed-in non-staff user
    gets a page saying so instead of being sent to sign-in again (which looped: allauth sends a
    signed-in visitor straight back to ``next``).
    """
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = ""
    target = target or reverse("admin:index")
    if not request.user.is_authenticated:
        return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': target})}")
    if request.user.is_active and request.user.is_staff:
        return redirect(target)
    return render(request, "admin/no_access.html", status=403)


def _api_links(request: HttpRequest, names: dict[str, str]) -> JsonResponse:
    return JsonResponse(
        {key: request.build_absolute_uri(reverse(name)) for key, name in names.items()}
    )


@declare(PUBLIC)
@require_GET
def api_root(request: HttpRequest) -> JsonResponse:
    """Where to start: the versions, the OpenAPI schema and its docs."""
    return _api_links(request, {"v1": "api-v1", "schema": "schema", "docs": "api-docs"})


@declare(PUBLIC)
@require_GET
def api_v1_root(request: HttpRequest) -> JsonResponse:
    """Every v1 resource, from the router itself so the index can't drift from the routes."""
    names = {
        prefix: f"{basename}-list"
        for registry in (router.registry, fleet_router.registry)
        for prefix, _viewset, basename in registry
    }
    return _api_links(request, names | {"schema": "schema", "docs": "api-docs"})


@declare(PUBLIC)
@require_GET
@cache_control(max_age=3600, public=True)  # the target is a hashed name that changes on upgrades
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says."""
    return redirect(static("img/logo.svg"))
