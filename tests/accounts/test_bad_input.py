"""Bad input on every API write is a 400 with field errors, never a 500; lists page predictably."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.models import Organization, Role, Site
from tests.accounts import test_role_matrix as matrix
from tests.conftest import OrgWorld, api_client_for

# Actions that take no body (resend, accept, decline, cancel, a node ping, a node's session
# begin) ignore one; every other write parses it — a miner action's body is its parameters,
# so null or a list there is a 400.
BODYLESS = frozenset({"resend", "accept", "decline", "cancel", "ping", "session_begin"})
# A node's session calls read its Bearer api key first (401 without it, as the role matrix
# checks); their bad bodies, with a key, are tested in tests/fleet/nodes/test_enrollment.py.
NODE_KEYED = frozenset({"session_complete"})
WRITE_ROUTES = [
    r
    for r in matrix.api_routes()
    if r.method in ("post", "put", "patch") and r.action not in BODYLESS | NODE_KEYED
]
SPECS = {cls.viewset: cls for cls in matrix.RouteMatrix.__subclasses__()}

# Raw bodies sent as application/json.
RAW_GARBAGE = {
    "not-json": b"{this is not json",
    "truncated": b'{"name": "x"',
    "array": b'["name", "x"]',
    "string": b'"just a string"',
    "number": b"42",
    "null": b"null",
    "deep-nesting": b"[" * 50_000 + b"]" * 50_000,
    "bad-utf8": b'{"name": "\xff\xfe"}',
}
# Valid JSON with wrong types / sizes / ids, merged over a valid payload.
FIELD_GARBAGE = {
    "numbers-for-strings": lambda data: {
        k: 12345 if isinstance(v, str) else v for k, v in data.items()
    },
    "objects-everywhere": lambda data: {k: {"$gt": ""} for k in data},
    "lists-everywhere": lambda data: {k: [v] for k, v in data.items()},
    "nulls": lambda data: dict.fromkeys(data),
    "huge-strings": lambda data: {
        k: "x" * 1_000_000 if isinstance(v, str) else v for k, v in data.items()
    },
    "nul-bytes": lambda data: {k: "a\x00b" if isinstance(v, str) else v for k, v in data.items()},
    "unknown-ids": lambda data: {k: 10**12 if isinstance(v, int) else v for k, v in data.items()},
    "negative-ids": lambda data: {k: -1 if isinstance(v, int) else v for k, v in data.items()},
    "string-ids": lambda data: {
        k: "1 OR 1=1" if isinstance(v, int) else v for k, v in data.items()
    },
}


def _setup(route: matrix.ApiRoute, world: OrgWorld) -> tuple[APIClient, str, dict[str, Any]]:
    spec = SPECS[route.viewset]()
    obj = spec.make_object(world)
    return (
        api_client_for(world.users["owner"]),
        route.url(obj),
        spec.payload(route.action, world, obj),
    )


def _attempt(client: APIClient, route: matrix.ApiRoute, url: str, **kwargs: Any) -> Any:
    """One request in a savepoint that is rolled back, so each garbage kind meets a clean world."""
    with transaction.atomic():
        response = getattr(client, route.method)(url, **kwargs)
        transaction.set_rollback(True)
    return response


@pytest.mark.parametrize(
    "route", WRITE_ROUTES, ids=[f"{r.method}-{r.template}" for r in WRITE_ROUTES]
)
def test_unparseable_bodies_are_400(org_a: OrgWorld, route: matrix.ApiRoute) -> None:
    client, url, _ = _setup(route, org_a)
    wrong = []
    for kind, body in RAW_GARBAGE.items():
        response = _attempt(client, route, url, data=body, content_type="application/json")
        if response.status_code != 400 or not response["Content-Type"].startswith(
            "application/json"
        ):
            wrong.append(f"{kind}: {response.status_code} {response.content[:120]!r}")
    assert not wrong, wrong


@pytest.mark.parametrize(
    "route", WRITE_ROUTES, ids=[f"{r.method}-{r.template}" for r in WRITE_ROUTES]
)
def test_wrong_types_sizes_and_ids_are_never_a_500(org_a: OrgWorld, route: matrix.ApiRoute) -> None:
    client, url, valid = _setup(route, org_a)
    if not valid:
        pytest.skip("no body fields")
    wrong = []
    for kind, mangle in FIELD_GARBAGE.items():
        response = _attempt(client, route, url, data=mangle(valid), format="json")
        if response.status_code >= 500:
            wrong.append(f"{kind}: {response.status_code}")
        elif response.status_code == 400 and not (
            isinstance(response.json(), dict) and response.json()
        ):
            wrong.append(f"{kind}: 400 without field errors")
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("url", "data", "field"),
    [
        ("/api/v1/sites/", {"org": "ORG", "name": "x" * 121}, "name"),
        ("/api/v1/sites/", {"org": "ORG"}, "name"),
        ("/api/v1/sites/", {"org": 10**12, "name": "ok"}, "org"),
        ("/api/v1/sites/", {"org": "ORG", "name": "ok", "slug": "not a slug!"}, "slug"),
        ("/api/v1/sites/", {"org": "ORG", "name": "!!!"}, "slug"),
        (
            "/api/v1/memberships/",
            {"org": "ORG", "email": "not-an-email", "role": "viewer"},
            "email",
        ),
        (
            "/api/v1/memberships/",
            {"org": "ORG", "email": "ok@alpha.example", "role": "no-such-role"},
            "role",
        ),
        ("/api/v1/roles/", {"org": "ORG", "name": "R", "permissions": "site:read"}, "permissions"),
        ("/api/v1/roles/", {"org": "ORG", "name": "", "permissions": []}, "name"),
        ("/api/v1/tokens/", {"name": "t", "expires_at": "tomorrow"}, "expires_at"),
        ("/api/v1/site-roles/", {"site": "SITE", "user": 10**12, "role": "viewer"}, "user"),
    ],
)
def test_validation_errors_name_the_field(
    org_a: OrgWorld, url: str, data: dict[str, Any], field: str
) -> None:
    resolved = {
        k: org_a.org.pk if v == "ORG" else org_a.sites[0].pk if v == "SITE" else v
        for k, v in data.items()
    }
    response = api_client_for(org_a.users["owner"]).post(url, resolved, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_duplicate_site_slug_is_a_400(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    body = {"org": org_a.org.pk, "name": "Dup", "slug": org_a.sites[0].slug}
    response = client.post("/api/v1/sites/", body, format="json")
    assert response.status_code == 400 and "slug" in response.json()


def test_a_huge_request_body_is_refused_cleanly(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    body = json.dumps({"org": org_a.org.pk, "name": "x" * (5 * 1024 * 1024)})
    response = client.post("/api/v1/sites/", body, content_type="application/json")
    assert response.status_code in (400, 413)
    assert not Site.unscoped.filter(org=org_a.org, name__startswith="xxx").exists()


@pytest.mark.parametrize("pk", ["abc", "-1", "99999999999999999999999", "1.5", "%00"])
def test_garbage_ids_in_the_path_are_404(org_a: OrgWorld, pk: str) -> None:
    client = api_client_for(org_a.users["owner"])
    for base in (
        "sites",
        "roles",
        "memberships",
        "tokens",
        "activity",
        "users",
        "orgs",
        "site-roles",
    ):
        response = client.get(f"/api/v1/{base}/{pk}/")
        assert response.status_code == 404, (base, pk, response.status_code)


@pytest.mark.parametrize(
    "query",
    [
        "?page=abc",
        "?page=0",
        "?page=99999",
        "?page_size=abc",
        "?page_size=-5",
        "?org=abc",
        "?q=%00",
        "?slug=" + "x" * 10_000,
    ],
)
def test_garbage_query_params_never_500(org_a: OrgWorld, query: str) -> None:
    response = api_client_for(org_a.users["owner"]).get(f"/api/v1/sites/{query}")
    # 414: a query string over 8 KiB (config.middleware.QueryStringLimitMiddleware)
    assert response.status_code in (200, 400, 404, 414), (query, response.status_code)


# --- ordering and pagination --------------------------------------------------------------------------


def test_lists_page_in_a_deterministic_order(org_a: OrgWorld) -> None:
    for i in range(7):
        Site.unscoped.create(org=org_a.org, name="Same name", slug=f"same-{i}")
    client = api_client_for(org_a.users["viewer"])
    everything = [s["id"] for s in client.get("/api/v1/sites/?page_size=500").json()["results"]]
    assert len(everything) == 9 and len(set(everything)) == 9

    paged: list[int] = []
    url: str | None = "/api/v1/sites/?page_size=2"
    while url:
        body = client.get(url.replace("http://testserver", "")).json()
        assert body["count"] == 9
        paged += [s["id"] for s in body["results"]]
        url = body["next"]
    assert paged == everything, "pages must tile the list in one stable order"
    same = [s for s in client.get("/api/v1/sites/?q=same&page_size=500").json()["results"]]
    assert [s["id"] for s in same] == sorted(s["id"] for s in same), "ties break by id"


def test_page_size_is_capped(org_a: OrgWorld) -> None:
    Site.unscoped.bulk_create(
        Site(org=org_a.org, name=f"bulk {i}", slug=f"bulk-{i}") for i in range(505)
    )
    body = api_client_for(org_a.users["viewer"]).get("/api/v1/sites/?page_size=100000").json()
    assert len(body["results"]) == 500 and body["next"]


@pytest.mark.parametrize(
    "base", ["sites", "memberships", "roles", "users", "tokens", "activity", "site-roles", "orgs"]
)
def test_every_list_is_paginated(org_a: OrgWorld, base: str) -> None:
    body = api_client_for(org_a.users["owner"]).get(f"/api/v1/{base}/?page_size=1").json()
    assert set(body) >= {"count", "next", "previous", "results"}


# --- filters can't probe other orgs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/sites/", "org"),
        ("/api/v1/memberships/", "org"),
        ("/api/v1/activity/", "org"),
        ("/api/v1/activity/", "site"),
        ("/api/v1/roles/", "org"),
        ("/api/v1/site-roles/", "site"),
        ("/api/v1/memberships/", "user"),
        ("/api/v1/tokens/", "user"),
    ],
)
def test_filtering_by_another_orgs_id_looks_like_a_missing_id(
    org_a: OrgWorld, org_b: OrgWorld, url: str, param: str
) -> None:
    theirs = {"org": org_b.org.pk, "site": org_b.sites[0].pk, "user": org_b.users["viewer"].pk}[
        param
    ]
    ours = {"org": org_a.org.pk, "site": org_a.sites[0].pk, "user": org_a.users["viewer"].pk}[param]
    client = api_client_for(org_a.users["owner"])
    missing = client.get(f"{url}?{param}={10**12}")
    foreign = client.get(f"{url}?{param}={theirs}")
    assert client.get(f"{url}?{param}={ours}").status_code == 200
    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json()) or (
        foreign.status_code == missing.status_code == 400
    )
    assert foreign.status_code == 400


def test_org_update_cannot_change_the_slug_or_id(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    response = client.patch(
        f"/api/v1/orgs/{org_a.org.pk}/",
        {"slug": "hijack", "id": 999, "name": "Alpha"},
        format="json",
    )
    assert response.status_code == 200
    org = Organization.unscoped.get(pk=org_a.org.pk)
    assert org.slug == "alpha"


def test_role_update_cannot_move_a_role_to_another_org(org_a: OrgWorld, org_b: OrgWorld) -> None:
    role = Role.unscoped.create(org=org_a.org, slug="r", name="R", permissions=[])
    client = api_client_for(org_a.users["owner"])
    response = client.patch(
        f"/api/v1/roles/{role.pk}/", {"org": org_b.org.pk, "is_builtin": True}, format="json"
    )
    assert response.status_code in (200, 400)
    role.refresh_from_db()
    assert role.org_id == org_a.org.pk and role.is_builtin is False


# --- permanent regressions: cross-org invitations and tokens ------------------------------------


@pytest.mark.parametrize(
    "email",
    ["admin@alpha.example", "ADMIN@Alpha.Example ", "nobody@alpha.example"],
    ids=["existing", "existing-mixed-case", "unknown"],
)
def test_cross_org_invite_answers_alike_for_any_address(
    org_a: OrgWorld, org_b: OrgWorld, email: str
) -> None:
    """Org B inviting org A's people: always the same 201 shape, never a join or a link that
    sets a password, whatever the address or its spelling."""
    from accounts.models import Membership
    from tests.accounts.support import SAME_SHAPE

    response = api_client_for(org_b.users["owner"]).post(
        "/api/v1/invitations/",
        {"org": org_b.org.pk, "email": email, "role": "owner"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert set(response.json()) == SAME_SHAPE
    assert "/invitations/accept/" in response.json()["accept_url"]
    assert not Membership.unscoped.filter(org=org_b.org, user__email__iexact=email.strip()).exists()


@pytest.mark.parametrize("org", ["other", 1e400, 3.9, True, "1 OR 1=1", -1, 10**30, None])
def test_token_org_garbage_or_foreign_is_a_400(org_a: OrgWorld, org_b: OrgWorld, org: Any) -> None:
    value = org_b.org.pk if org == "other" else org
    body = (
        json.dumps({"name": "x", "org": value}) if org != 1e400 else '{"name": "x", "org": 1e400}'
    )
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/tokens/", data=body, content_type="application/json"
    )
    if org is None:
        assert response.status_code in (201, 400)  # null means "my only org" or a field error
    else:
        assert response.status_code == 400 and "org" in response.json(), response.content
