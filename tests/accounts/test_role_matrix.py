"""The role matrix: every ``/api/v1/`` route × every built-in role of two orgs, an outsider and
an anonymous caller.

Routes come from the URLconf, so a new route or action is covered the day it is added (and a
new viewset fails ``test_every_api_viewset_has_a_matrix`` until it gets a matrix class here).
The expected outcome of each call is derived from the viewset's ``permissions`` map and the
built-in role definitions, never from the code under test:

- anonymous → 401/403;
- someone outside the object's org → 404, whatever their role;
- inside the org but unable to read the object → 404; able to read, lacking the action's
  permission → 403; holding it → 2xx;
- lists and exports never contain a row of another org.

Shared checks live in ``RouteMatrix``; each viewset's class only says how to make an object and
a valid payload (NetBox's ``utilities/testing/api.py`` style: inherited, not copied).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from django.db import connection, transaction
from django.db.models import Model
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from accounts.api import views
from accounts.api.base import ScopedViewSet
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
)
from accounts.permissions import AUTHENTICATED, BUILTIN_ROLES, PUBLIC
from accounts.routes import iter_routes
from accounts.services.activity import activity_record
from accounts.services.invitations import member_invite
from accounts.services.tokens import api_token_create
from tests.accounts.conftest import browser, fresh, sign_in
from tests.accounts.support import SAME_SHAPE, accept_new, invite, link_path, two_org_person
from tests.conftest import PASSWORD, ROLES, OrgWorld, api_client_for, make_user

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
        if route.method == "get" or perm == AUTHENTICATED:
            return success
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
            if api_route.method == "get" and not api_route.detail and principal.user is not None:
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_route" in metafunc.fixturenames and metafunc.cls is not None:
        routes = [r for r in api_routes() if r.viewset is metafunc.cls.viewset]
        metafunc.parametrize("api_route", routes, ids=[f"{r.method}-{r.action}" for r in routes])


# --- one class per viewset ----------------------------------------------------------------------


class TestOrganizations(RouteMatrix):
    viewset = views.OrganizationViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        if i == 0:
            return world.org
        org = Organization.unscoped.create(
            name=f"{world.org.slug} extra {i}", slug=f"{world.org.slug}-x{i}"
        )
        Membership.unscoped.create(
            user=world.users["owner"], org=org, role=Role.unscoped.get(slug="viewer", org=None)
        )
        return org

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"name": f"{world.org.slug} renamed"}


class TestSites(RouteMatrix):
    viewset = views.SiteViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        if i == 0:
            return world.sites[0]
        return Site.unscoped.create(org=world.org, name=f"{world.org.slug} extra {i}", slug=f"x{i}")

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            return {"org": world.org.pk, "name": f"{world.org.slug} new site"}
        return {"name": f"{world.org.slug} renamed", "location": "row 7"}


class TestUsers(RouteMatrix):
    viewset = views.UserViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return holder(world, i)


class TestMemberships(RouteMatrix):
    viewset = views.MembershipViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return Membership.unscoped.get(user=holder(world, i), org=world.org)

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            return {
                "org": world.org.pk,
                "email": f"invitee@{world.org.slug}.example",
                "role": "viewer",
            }
        return {"role": "viewer"}


class TestSiteRoles(RouteMatrix):
    viewset = views.SiteRoleViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return SiteRoleAssignment.unscoped.create(
            user=holder(world, i),
            site=world.sites[0],
            role=Role.unscoped.get(slug="viewer", org=None),
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"site": world.sites[1].pk, "user": world.users["field_tech"].pk, "role": "viewer"}


class TestRoles(RouteMatrix):
    viewset = views.RoleViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return Role.unscoped.create(
            org=world.org,
            slug=f"racker-{i}",
            name=f"{world.org.slug} racker {i}",
            permissions=["site:read"],
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {
            "org": world.org.pk,
            "name": f"{world.org.slug} auditor",
            "description": "",
            "permissions": ["site:read", "activity:read"],
        }


class TestPermissionCatalog(RouteMatrix):
    viewset = views.PermissionCatalogViewSet


class TestTokens(RouteMatrix):
    viewset = views.TokenViewSet

    def can_see(self, principal: Principal) -> bool:
        """Others' tokens are visible only to holders of apikey:manage in the owner's org."""
        return "apikey:manage" in principal.perms

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        if route.action == "create" and principal.user is not None and principal.org is None:
            return {400}  # in no org, a token would grant nothing
        return super().expected(principal, route)

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        owner = holder(world, i)
        return api_token_create(
            actor=Actor.for_user(owner), user=owner, name=f"{world.org.slug} ci {i}"
        ).token

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"name": "laptop"}


class TestInvitations(RouteMatrix):
    viewset = views.InvitationViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return member_invite(
            actor=Actor.for_user(world.users["owner"]),
            org=world.org,
            email=f"invited{i}@{world.org.slug}.example",
            role=Role.unscoped.get(slug="viewer", org=None),
            base_url="http://testserver/",
        ).invitation

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            return {"org": world.org.pk, "email": f"new@{world.org.slug}.example", "role": "viewer"}
        return {}


class TestMyInvitations(RouteMatrix):
    """Invitations addressed to someone else are nobody else's: 404 for every principal."""

    viewset = views.MyInvitationViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return TestInvitations().make_object(world, i)

    def can_see(self, principal: Principal) -> bool:
        return False

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        if principal.user is None:
            return {401, 403}
        return {404} if route.detail else {200}


class TestActivity(RouteMatrix):
    viewset = views.ActivityViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return activity_record(
            actor=Actor.for_user(world.users["owner"]),
            verb="site.update",
            org=world.org,
            site=world.sites[0],
            target=world.sites[0],
            details={"n": i},
        )


class TestMe(RouteMatrix):
    viewset = views.MeViewSet


# --- coverage of the matrix itself --------------------------------------------------------------


def test_every_api_viewset_has_a_matrix() -> None:
    routes = api_routes()
    assert routes, "no /api/v1/ routes found"
    covered = {cls.viewset for cls in RouteMatrix.__subclasses__()}
    missing = sorted({r.viewset.__name__ for r in routes if r.viewset not in covered})
    assert not missing, f"add a RouteMatrix class for: {missing}"
    not_scoped = sorted(
        {
            str(r)
            for r in routes
            if not (isinstance(r.viewset, type) and issubclass(r.viewset, ScopedViewSet))
        }
    )
    assert not not_scoped, f"API routes must be served by ScopedViewSet: {not_scoped}"


def test_matrix_sees_every_kind_of_action() -> None:
    """Guard against the walker silently finding nothing of a kind it should."""
    actions = {(r.viewset.__name__, r.action) for r in api_routes()}
    for expected in [
        ("SiteViewSet", "list"),
        ("SiteViewSet", "create"),
        ("SiteViewSet", "retrieve"),
        ("SiteViewSet", "update"),
        ("SiteViewSet", "partial_update"),
        ("SiteViewSet", "destroy"),
        ("ActivityViewSet", "export"),
        ("MembershipViewSet", "partial_update"),
    ]:
        assert expected in actions


def test_matrix_objects_belong_to_their_org(org_a: OrgWorld) -> None:
    """The leak checks rely on org A's things mentioning 'alpha' and nothing of B's."""
    for cls in RouteMatrix.__subclasses__():
        with transaction.atomic():
            obj = cls().make_object(org_a)
            if obj is not None and hasattr(obj, "scope_ids"):
                assert obj.scope_ids()[0] == org_a.org.pk, cls.__name__
            assert not ActivityEvent.unscoped.exclude(org=org_a.org).exists()
            assert not ApiToken.unscoped.exclude(org=org_a.org).exists()
            transaction.set_rollback(True)


# --- permanent regressions: cross-org account takeover and token reach ----------------------------


def test_regression_cross_org_invitation_is_no_takeover(org_a: OrgWorld, org_b: OrgWorld) -> None:
    """The reported attack: org B invites org A's admin. Nothing joins, no password link, the
    answer is the same as for an unknown address, and the link alone can't set a password."""
    victim = org_a.users["admin"]
    victim.set_unusable_password()  # an invited admin who hasn't chosen a password yet
    victim.save()
    attacker = api_client_for(org_b.users["owner"])
    known = invite(attacker, org_b, victim.email, role="owner")
    unknown = invite(attacker, org_b, "nobody-yet@bravo.example", role="owner")
    assert known.status_code == unknown.status_code == 201
    assert set(known.json()) == set(unknown.json()) == SAME_SHAPE
    assert "set_password_url" not in known.json() and "created_user" not in known.json()

    # org B sees nothing of the account, and the account gains nothing
    assert not Membership.unscoped.filter(user=victim, org=org_b.org).exists()
    users = attacker.get("/api/v1/users/", {"page_size": 200}).json()["results"]
    assert victim.email not in {u["email"] for u in users}
    assert attacker.get(f"/api/v1/users/{victim.pk}/").status_code == 404

    # opening the link without being the victim asks for sign-in; posting a password does nothing
    path = link_path(known.json()["accept_url"])
    stranger = browser("10.7.2.1")
    page = stranger.get(path)
    assert page.status_code == 200 and b"Sign in to answer" in page.content
    accept_new(stranger, path, "attacker-chosen-pass-99")
    assert not fresh(victim).has_usable_password()
    assert not Membership.unscoped.filter(user=victim, org=org_b.org).exists()

    # signed in as someone else: refused
    other = browser("10.7.2.2")
    assert sign_in(other, org_b.users["owner"].email, PASSWORD).status_code == 302
    assert other.get(path).status_code == 403


def test_regression_other_orgs_owner_neither_sees_nor_revokes_tokens(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    _, in_a, in_b = two_org_person(org_a, org_b)
    b_owner = api_client_for(org_b.users["owner"])
    listed = {t["id"] for t in b_owner.get("/api/v1/tokens/").json()["results"]}
    assert in_b.pk in listed and in_a.pk not in listed
    assert b_owner.get(f"/api/v1/tokens/{in_a.pk}/").status_code == 404
    assert b_owner.delete(f"/api/v1/tokens/{in_a.pk}/").status_code == 404
    assert ApiToken.unscoped.get(pk=in_a.pk).revoked_at is None
    # org A's owner may revoke the org A one
    assert (
        api_client_for(org_a.users["owner"]).delete(f"/api/v1/tokens/{in_a.pk}/").status_code == 204
    )
