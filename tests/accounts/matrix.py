"""The role matrix's machinery: API routes from the URLconf, the principals who call them and
``RouteMatrix``, the shared checks (what each call must answer, that refusals change nothing,
that lists leak nothing and stay N+1-free).

Not a test module: ``test_role_matrix.py`` subclasses ``RouteMatrix`` once per viewset and
parametrizes the routes; ``test_bad_input.py`` reuses the routes and the per-viewset objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connection, transaction
from django.db.models import Model
from django.test.utils import CaptureQueriesContext

from accounts.api.base import ScopedViewSet
from accounts.models import ActivityEvent, User
from accounts.permissions import AUTHENTICATED, BUILTIN_ROLES, PUBLIC
from accounts.routes import iter_routes
from tests.conftest import ROLES, OrgWorld, api_client_for, make_user

READ_ACTIONS = frozenset({"list", "retrieve"})
SUCCESS = {
    "list": {200},
    "retrieve": {200},
    "create": {201},
    "update": {200},
    "partial_update": {200},
    "destroy": {204},
}
CUSTOM_SUCCESS = {200, 201, 202, 204}


@dataclass(frozen=True)
class ApiRoute:
    viewset: type[ScopedViewSet]
    template: str  # "/api/v1/sites/{pk}/"
    method: str
    action: str
    detail: bool

    def url(self, obj: Model | None) -> str:
        return self.template.format(pk=obj.pk if obj is not None else 0)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template} ({self.action})"


def _template(route: str) -> str:
    path = route.replace("^", "").replace("$", "")
    return "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)


def api_routes() -> list[ApiRoute]:
    """Every (method, action) the router exposes under /api/v1/, format-suffix twins left out."""
    found = []
    for route, callback in iter_routes():
        if not route.startswith("api/v1/") or "(?P<format>" in route:
            continue
        viewset = getattr(callback, "cls", None)
        for method, action in (getattr(callback, "actions", None) or {}).items():
            found.append(ApiRoute(viewset, _template(route), method, action, "(?P<pk>" in route))
    return found


@dataclass(frozen=True)
class Principal:
    label: str
    user: User | None
    org: str | None  # "a", "b" or None (outsider / anonymous)
    role: str | None

    @property
    def perms(self) -> frozenset[str]:
        return BUILTIN_ROLES[self.role][1] if self.role else frozenset()


def principals(org_a: OrgWorld, org_b: OrgWorld, outsider: User) -> list[Principal]:
    people = [Principal(f"a/{r}", org_a.users[r], "a", r) for r in ROLES]
    people += [Principal(f"b/{r}", org_b.users[r], "b", r) for r in ROLES]
    return [
        *people,
        Principal("outsider", outsider, None, None),
        Principal("anonymous", None, None, None),
    ]


def holder(world: OrgWorld, i: int = 0, role: str = "field_tech") -> User:
    """An extra member of ``world`` whose things the matrix acts on (never one of the principals)."""
    slug = world.org.slug
    return make_user(f"holder{i}@{slug}.example", world.org, role)


class RouteMatrix:
    """Shared checks; a subclass names its viewset and how to build objects and payloads."""

    viewset: ClassVar[type[ScopedViewSet]]
    # the caller's grants (memberships, site roles), the count, the page: nothing per row
    list_query_ceiling: ClassVar[int] = 4

    # --- what a subclass provides --------------------------------------------------------
    def make_object(self, world: OrgWorld, i: int = 0) -> Model | None:
        """An object of ``world``'s org (distinct per ``i``), or None for object-less viewsets."""
        return None

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {}

    def read_permission(self) -> str:
        perms = self.viewset.permissions
        return perms.get("retrieve") or perms["list"]

    def can_see(self, principal: Principal) -> bool:
        """Whether a member of the object's org with this role can read the object."""
        perm = self.read_permission()
        return perm == AUTHENTICATED or perm in principal.perms

    # --- expectations --------------------------------------------------------------------
    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        perm = self.viewset.permission_for(route.action)
        assert perm is not None, f"{route} declares no permission"
        success = SUCCESS.get(route.action, CUSTOM_SUCCESS)
        if perm == PUBLIC:
            return success | {400, 404}
        if principal.user is None:
            return {401, 403}
        if route.detail:
            if principal.org != "a" or not self.can_see(principal):
                return {404}
            if route.action in READ_ACTIONS or perm == AUTHENTICATED or perm in principal.perms:
                return success
            return {403}
        if perm == AUTHENTICATED or route.action == "list":
            return success
        if route.method == "get":  # an export: like the list, or its own permission somewhere
            same = perm == self.viewset.permissions.get("list")
            return success if same or perm in principal.perms else {403}
        if principal.org != "a":
            return {400, 403}  # org A is not even a valid choice for them
        return success if perm in principal.perms else {403}

    # --- the checks ----------------------------------------------------------------------
    def call(
        self, principal: Principal, route: ApiRoute, world: OrgWorld, obj: Model | None
    ) -> Any:
        client = api_client_for(User.objects.get(pk=principal.user.pk) if principal.user else None)
        method = getattr(client, route.method)
        data = self.payload(route.action, world, obj) if route.method != "get" else None
        return method(route.url(obj), data, format="json")

    def test_route(
        self, api_route: ApiRoute, org_a: OrgWorld, org_b: OrgWorld, outsider: User
    ) -> None:
        obj = self.make_object(org_a)
        self.make_object(org_b)
        if api_route.detail:
            assert obj is not None, f"{type(self).__name__}.make_object must build an object"
        wrong = []
        for principal in principals(org_a, org_b, outsider):
            with transaction.atomic():
                before = _state(obj)
                response = self.call(principal, api_route, org_a, obj)
                after = _state(obj)
                transaction.set_rollback(True)
            want = self.expected(principal, api_route)
            if response.status_code not in want:
                body = getattr(response, "content", b"")[:200]
                wrong.append(
                    f"{principal.label}: {response.status_code}, expected {sorted(want)} {body!r}"
                )
                continue
            if response.status_code >= 400 and after != before:
                wrong.append(
                    f"{principal.label}: refused with {response.status_code} but changed data"
                )
            if (
                api_route.method == "get"
                and not api_route.detail
                and principal.user is not None
                and response.status_code == 200
            ):
                wrong += [
                    f"{principal.label}: {leak}" for leak in self.leaks(principal, response, obj)
                ]
        assert not wrong, f"{api_route}:\n  " + "\n  ".join(wrong)

    def leaks(self, principal: Principal, response: Any, obj: Model | None) -> Iterator[str]:
        """Rows of another org in a list/export, or the caller's own visible object missing."""
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode().lower()
        for marker, org in (("alpha", "a"), ("bravo", "b")):
            if principal.org != org and marker in text:
                yield f"response mentions {marker!r} (another org): {text[:300]}"
        if (
            obj is not None
            and principal.org == "a"
            and self.can_see(principal)
            and response["Content-Type"].startswith("application/json")
            and not getattr(response, "streaming", False)
        ):
            data = response.json()
            rows = data["results"] if isinstance(data, dict) else data
            if obj.pk not in {row.get("id") for row in rows}:
                yield f"own org's object {obj.pk} missing from the list"

    def test_list_query_ceiling(
        self, org_a: OrgWorld, org_b: OrgWorld, django_assert_max_num_queries: Any
    ) -> None:
        """Constant queries per list page: doubling the rows adds none (no N+1), under a ceiling."""
        lists = [r for r in api_routes() if r.viewset is self.viewset and r.action == "list"]
        assert lists, f"{self.viewset.__name__} has no list route"
        url = lists[0].url(None)
        self.make_object(org_b)
        counts = []
        for batch in (range(0, 3), range(3, 6)):
            for i in batch:
                self.make_object(org_a, i)
            client = api_client_for(User.objects.get(pk=org_a.users["owner"].pk))
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            counts.append(len(ctx))
        assert counts[0] == counts[1], f"{lists[0]}: queries grow with rows: {counts}"
        client = api_client_for(User.objects.get(pk=org_a.users["owner"].pk))
        with django_assert_max_num_queries(self.list_query_ceiling):
            assert client.get(url).status_code == 200


def _state(obj: Model | None) -> tuple[list[dict[str, Any]], int]:
    """The object's row and the count of successful changes: a refused call changes neither
    (it may only add its own denied/failed event)."""
    rows = list(type(obj)._default_manager.filter(pk=obj.pk).values()) if obj is not None else []
    return rows, ActivityEvent.unscoped.filter(result="ok").count()
