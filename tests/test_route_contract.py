"""Every route declares the permission it needs, and the walkers that check it really catch drift."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path, re_path
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from accounts.api.base import ScopedViewSet
from accounts.models import Site
from accounts.permissions import AUTHENTICATED, PUBLIC
from accounts.routes import (
    declare,
    declared_permissions,
    iter_routes,
    undeclared_routes,
    undeclared_websocket_routes,
)
from config.routing import websocket_urlpatterns


def test_every_http_route_declares_a_known_permission() -> None:
    assert undeclared_routes() == []


def test_every_websocket_consumer_declares_a_known_permission() -> None:
    assert undeclared_websocket_routes(websocket_urlpatterns) == []


# --- the walker catches what it should -----------------------------------------------------------


def _undeclared_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("nobody said who may see this")


@declare(AUTHENTICATED)
def _declared_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


class _SitesWithLooseAction(mixins.ListModelMixin, ScopedViewSet):
    queryset = Site.unscoped.all()
    permissions = {"list": "site:read"}  # "reboot_all" is missing on purpose

    @action(detail=True, methods=["post"])
    def reboot_all(self, request: Request, pk: str | None = None) -> Response:
        return Response({})


@pytest.fixture
def drifting_urlconf(settings: Any) -> Iterator[str]:
    """A URLconf with one undeclared view, one undeclared viewset action and one good view."""
    router = DefaultRouter()
    router.include_root_view = False
    router.register("loose-sites", _SitesWithLooseAction, basename="loose-site")
    module = types.ModuleType("tests._drifting_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("declared/", _declared_view),
        path("undeclared/", _undeclared_view),
        path("api/", include((router.urls, "drift"))),
    ]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    yield module.__name__
    del sys.modules[module.__name__]


def test_walker_reports_an_undeclared_view(drifting_urlconf: str) -> None:
    problems = undeclared_routes()
    assert any(p.startswith("undeclared/") and "_undeclared_view" in p for p in problems), problems
    assert not any(p.startswith("declared/") for p in problems), problems


def test_walker_reports_an_undeclared_viewset_action(drifting_urlconf: str) -> None:
    problems = undeclared_routes()
    assert any("loose-sites" in p and "reboot_all" in p for p in problems), problems
    # the list route of the same viewset is declared and therefore not reported
    routes = dict(iter_routes())
    list_route = next(
        r for r in routes if "loose-sites" in r and "pk" not in r and "format" not in r
    )
    assert declared_permissions(routes[list_route]) == ["site:read"]


def test_walker_reports_an_unknown_permission_name() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    view.rw_permission = "miner:teleport"  # type: ignore[attr-defined]
    assert declared_permissions(view) == ["miner:teleport"]
    with pytest.raises(ValueError, match="miner:teleport"):
        declare("miner:teleport")


class _DeclaredConsumer(AsyncJsonWebsocketConsumer):
    rw_permission = "miner:read"


class _UndeclaredConsumer(AsyncJsonWebsocketConsumer):
    pass


class _MisdeclaredConsumer(AsyncJsonWebsocketConsumer):
    rw_permission = "miner:teleport"


def test_websocket_walker_catches_undeclared_consumers() -> None:
    patterns = [
        path("ws/good/", _DeclaredConsumer.as_asgi()),
        path("ws/nested/", URLRouter([re_path(r"^(?P<pk>\d+)/$", _UndeclaredConsumer.as_asgi())])),
        path("ws/bad/", _MisdeclaredConsumer.as_asgi()),
    ]
    problems = undeclared_websocket_routes(patterns)
    assert len(problems) == 2, problems
    assert any("ws/nested/" in p and "_UndeclaredConsumer" in p for p in problems)
    assert any("ws/bad/" in p and "miner:teleport" in p for p in problems)
    assert undeclared_websocket_routes([path("ws/good/", _DeclaredConsumer.as_asgi())]) == []


# --- ScopedViewSet can't be bypassed by accident ---------------------------------------------------


@pytest.mark.parametrize("method", ["get_queryset", "get_object", "get_permissions"])
def test_scoped_viewset_refuses_overriding_the_sealed_plumbing(method: str) -> None:
    with pytest.raises(TypeError, match=method):
        type(
            "Sneaky",
            (ScopedViewSet,),
            {method: lambda self: None, "permissions": {"list": "site:read"}},
        )


def test_scoped_viewset_refuses_an_override_from_a_mixin() -> None:
    """The seal compares with the base's attributes, so a mixin can't supply get_queryset."""

    class Leaky:
        def get_queryset(self) -> Any:
            return Site.unscoped.all()

    with pytest.raises(TypeError, match="get_queryset"):
        type("Mixed", (Leaky, ScopedViewSet), {"permissions": {"list": "site:read"}})


def test_an_undeclared_action_is_improperly_configured(rf: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    view = _SitesWithLooseAction()
    view.action = "reboot_all"
    with pytest.raises(ImproperlyConfigured):
        view.permission_for_action()
    assert not issubclass(ImproperlyConfigured, OSError)


class _PlainApiView(APIView):
    def get(self, request: Request) -> Response:
        return Response({})


def test_walker_refuses_a_declared_plain_apiview_under_api_v1(settings: Any) -> None:
    module = types.ModuleType("tests._plain_api_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("api/v1/plain/", declare(AUTHENTICATED)(_PlainApiView.as_view()))
    ]
    sys.modules[module.__name__] = module
    try:
        settings.ROOT_URLCONF = module.__name__
        problems = undeclared_routes()
    finally:
        del sys.modules[module.__name__]
    assert any("api/v1/plain/" in p and "ScopedViewSet" in p for p in problems), problems


def test_scoped_viewset_refuses_a_permission_outside_the_catalog() -> None:
    with pytest.raises(TypeError, match="miner:teleport"):
        type("Typo", (ScopedViewSet,), {"permissions": {"list": "miner:teleport"}})


def test_scoped_viewset_allows_the_named_escape_hatch() -> None:
    cls = type(
        "Explicit",
        (ScopedViewSet,),
        {"dangerously_get_queryset": lambda self: None, "permissions": {"list": "site:read"}},
    )
    assert cls.permission_for("list") == "site:read"


# --- declarations are enforced, not just written down ---------------------------------------------


def _concrete(route: str) -> str:
    """A URL that the route matches, with dummy values for its parameters."""
    url = route.replace("^", "").replace("$", "")
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", "1", url)
    url = re.sub(r"<(?:\w+:)?\w+>", "1", url)
    return "/" + url.replace("\\", "")


def _protected_routes() -> list[str]:
    return [
        route
        for route, callback in iter_routes()
        if PUBLIC not in declared_permissions(callback)
        and "(?P<format>" not in route
        and ".*" not in route
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("route", _protected_routes())
def test_anonymous_callers_are_refused_on_every_protected_route(route: str) -> None:
    """Anything not declared PUBLIC answers an anonymous GET with sign-in, 401/403, or 404/405."""
    response = Client().get(_concrete(route))
    assert response.status_code in {301, 302, 401, 403, 404, 405}, (route, response.status_code)
    if response.status_code == 302:
        # the admin's own sign-in page is a redirect to ours (one sign-in path: lockout, MFA, audit)
        assert response["Location"].startswith(("/accounts/login/", "/admin/login/")), (
            route,
            response["Location"],
        )


def test_admin_sign_in_is_ours() -> None:
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def _api_routes() -> list[str]:
    return [
        route
        for route, _callback in iter_routes()
        if "api/v1/" in route and "(?P<format>" not in route and ".*" not in route
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("route", _api_routes())
def test_no_method_on_any_api_route_answers_5xx_to_anonymous_callers(route: str) -> None:
    """Public routes included: a method a route doesn't serve is 405, never a 500."""
    client = Client()
    for method in ("get", "post", "put", "patch", "delete", "options"):
        response = getattr(client, method)(_concrete(route), content_type="application/json")
        assert response.status_code < 500, (route, method, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "owner"])
def test_options_on_every_api_route_never_answers_5xx(who: str, request: Any) -> None:
    """DRF's metadata builds each view's serializer and looks the object up: an action-only
    viewset (no ``serializer_class``) or a singleton (no ``pk``) made OPTIONS a 500."""
    client = Client()
    if who == "owner":
        world = request.getfixturevalue("org_a")
        client.force_login(world.users["owner"])
    failures = []
    for route in _api_routes():
        response = client.options(_concrete(route))
        if response.status_code >= 500:
            failures.append((route, response.status_code))
        elif who == "owner" and response.status_code == 200:
            assert response.json()["name"], route
    assert failures == []
