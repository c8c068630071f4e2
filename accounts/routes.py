"""Route declarations and the check that every route has one.

Pages and other non-DRF views are wrapped with ``declare(permission)``; DRF viewsets declare
``permissions`` per action; whole third-party URL trees (allauth, the Django admin) are classified
by the module their views live in. ``undeclared_routes()`` is what the contract test asserts on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, get_resolver
from django.views.generic import RedirectView

from accounts.permissions import PUBLIC, STAFF, is_declarable

V = TypeVar("V", bound=Callable[..., Any])

# Third-party trees: their own views enforce these, we only classify them.
_MODULE_CLASSES: dict[str, str] = {
    "allauth.": PUBLIC,  # sign-in, reset, MFA: allauth requires login where it matters
    "django.contrib.admin.": STAFF,
    "django.views.static": PUBLIC,
    "django.contrib.staticfiles.": PUBLIC,
}


def declare(permission: str) -> Callable[[V], V]:
    if not is_declarable(permission):
        raise ValueError(f"{permission!r} is neither a catalog permission nor a route class")

    def wrap(view: V) -> V:
        view.rw_permission = permission  # type: ignore[attr-defined]
        return login_not_required(view) if permission == PUBLIC else view

    return wrap


def declared_permissions(callback: Any) -> list[str]:
    """Every permission a URL callback declares; empty when it declares nothing."""
    explicit = getattr(callback, "rw_permission", None)
    if explicit:
        return [explicit]
    viewset = getattr(callback, "cls", None)
    actions = getattr(callback, "actions", None)
    if viewset is not None and actions and hasattr(viewset, "permission_for"):
        perms = [viewset.permission_for(name) for name in actions.values()]
        return [] if None in perms else [p for p in perms if p is not None]
    inner = callback
    while getattr(inner, "__wrapped__", None) is not None and not hasattr(inner, "view_class"):
        inner = inner.__wrapped__
    module = getattr(inner, "__module__", "") or ""
    view_class = getattr(inner, "view_class", None) or getattr(inner, "cls", None)
    if view_class is RedirectView:
        return [PUBLIC]  # a bare redirect exposes nothing
    if view_class is not None:
        module = view_class.__module__
    if _is_admin_view(callback):
        return [STAFF]
    for prefix, route_class in _MODULE_CLASSES.items():
        if module.startswith(prefix) or module == prefix:
            return [route_class]
    return []


def _is_admin_view(callback: Any) -> bool:
    """Built by the admin: tagged by ``ModelAdmin.get_urls`` or an ``admin_view``-wrapped method
    of a ModelAdmin/AdminSite (e.g. UserAdmin's password form, which carries no tag)."""
    from django.contrib.admin import AdminSite, ModelAdmin

    obj = callback
    while obj is not None:
        if getattr(obj, "admin_site", None) is not None or getattr(obj, "model_admin", None):
            return True
        if obj is not callback and isinstance(
            getattr(obj, "__self__", None), (AdminSite, ModelAdmin)
        ):
            return True
        obj = getattr(obj, "__wrapped__", None)
    return False


def iter_routes(patterns: Any = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from iter_routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _scoped_api_view(callback: Any) -> bool:
    from accounts.api.base import ScopedViewSet

    viewset = getattr(callback, "cls", None)
    return isinstance(viewset, type) and issubclass(viewset, ScopedViewSet)


def undeclared_routes(patterns: Any = None) -> list[str]:
    problems = []
    for route, callback in iter_routes(patterns):
        # Every resource under /api/v1/ (the bare index of links aside) is a ScopedViewSet.
        if route.startswith("api/v1/") and route != "api/v1/" and not _scoped_api_view(callback):
            problems.append(
                f"{route} ({getattr(callback, '__qualname__', callback)}) is not a ScopedViewSet: "
                "every /api/v1/ route is scoped by the one base class"
            )
            continue
        perms = declared_permissions(callback)
        if not perms:
            problems.append(
                f"{route} ({getattr(callback, '__qualname__', callback)}) declares no permission"
            )
        problems.extend(f"{route} declares unknown {p!r}" for p in perms if not is_declarable(p))
    return problems


def iter_websocket_routes(patterns: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(route, consumer class) for a Channels router's patterns, nested ``URLRouter``s included."""
    for entry in patterns:
        app = entry.callback
        nested = getattr(app, "routes", None)
        if nested is not None:
            yield from iter_websocket_routes(nested, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), getattr(app, "consumer_class", app)


def undeclared_websocket_routes(patterns: Any) -> list[str]:
    """Consumers must carry ``rw_permission``; the caller passes ``config.routing`` patterns
    (accounts never imports fleet)."""
    problems = []
    for route, consumer in iter_websocket_routes(patterns):
        perm = getattr(consumer, "rw_permission", None)
        name = getattr(consumer, "__qualname__", consumer)
        if not perm:
            problems.append(f"ws {route} ({name}) declares no rw_permission")
        elif not is_declarable(perm):
            problems.append(f"ws {route} ({name}) declares unknown {perm!r}")
    return problems
