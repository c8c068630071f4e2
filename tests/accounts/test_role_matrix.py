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

Shared checks live in ``RouteMatrix`` (``tests/accounts/matrix.py``, with the route walker and
the principals); each viewset's class here only says how to make an object and a valid payload
(NetBox's ``utilities/testing/api.py`` style: inherited, not copied).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Model

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
)
from accounts.services.activity import activity_record
from accounts.services.invitations import member_invite
from accounts.services.tokens import api_token_create
from discovery.api import views as discovery_views
from fleet.api import gateway as fleet_gateway
from fleet.api import nodes as fleet_node_views
from fleet.api import settings as fleet_settings_api
from fleet.api import views as fleet_views
from fleet.models import Miner
from tests.accounts.conftest import browser, fresh, sign_in
from tests.accounts.matrix import (
    CUSTOM_SUCCESS,
    SUCCESS,
    ApiRoute,
    Principal,
    RouteMatrix,
    api_routes,
    holder,
)
from tests.accounts.support import SAME_SHAPE, accept_new, invite, link_path, two_org_person
from tests.conftest import PASSWORD, OrgWorld, api_client_for
from tests.terminals.matrix import (  # noqa: F401  (collected here, with the others)
    TestRecordings,
    TestRemoteCommands,
    TestSshHosts,
    TestTerminalSessions,
)

# test_bad_input.py reads these through this module (``matrix.api_routes``, ``matrix.ApiRoute``,
# ``matrix.RouteMatrix.__subclasses__()``, which finds the classes below once this is imported)
__all__ = ["ApiRoute", "RouteMatrix", "api_routes"]


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


ACTION_PAYLOADS: dict[str, dict[str, Any]] = {
    "action_blink": {"on": True, "seconds": 5},
    "action_set_power_target": {"watts": 3000},
    "action_set_pools": {
        "pools": [{"url": "stratum+tcp://pool.example:3333", "user": "{site}.{name}"}]
    },
    "action_set_cooling": {"mode": "auto"},
}


def matrix_miner(world: OrgWorld, i: int = 0) -> Miner:
    from miners import Capability

    return Miner.unscoped.create(
        org=world.org,
        site=world.sites[0],
        identifier=f"serial:{world.org.slug}-{i}",
        name=f"{world.org.slug} rig {i}",
        host=f"10.9.0.{i + 1}",
        port=80,
        driver="protoos",
        capabilities=sorted(str(c) for c in Capability),
    )


class TestMiners(RouteMatrix):
    viewset = fleet_views.MinerViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return matrix_miner(world, i)

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            # loopback is refused before any dial: holders get a 400 naming the host
            return {"site": world.sites[0].pk, "host": "127.0.0.1", "password": "x"}
        if action.startswith("action_"):
            return ACTION_PAYLOADS.get(action, {})
        return {"name": f"{world.org.slug} renamed", "rack": "B"}

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        wanted = super().expected(principal, route)
        if route.action == "create" and wanted == SUCCESS["create"]:
            return {400}
        if route.action == "logs" and wanted == CUSTOM_SUCCESS:
            return {400}  # the matrix miner's address is never dialled in tests: refused, 400
        return wanted


class TestFleetSummary(RouteMatrix):
    viewset = fleet_views.FleetSummaryViewSet
    # grants, totals + health, the sites, then totals + health per site: constant in miners
    list_query_ceiling = 12

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return matrix_miner(world, i)

    def leaks(self, principal: Principal, response: Any, obj: Model | None) -> Iterator[str]:
        """One object, not a list of rows: only the other org's names would be a leak."""
        text = response.content.decode().lower()
        for marker, org in (("alpha", "a"), ("bravo", "b")):
            if principal.org != org and marker in text:
                yield f"summary mentions {marker!r} (another org)"


class TestJobs(RouteMatrix):
    """Jobs are seen with miner:read; creating or cancelling one needs the action's own
    permission (blink here: miner:blink_led), which the service checks."""

    viewset = fleet_views.JobViewSet
    list_query_ceiling = 5

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from fleet.models import Job

        return Job.unscoped.create(
            org=world.org, kind="blink", actor_label=f"{world.org.slug} owner", total=1
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            miner = matrix_miner(world, 90)
            return {"kind": "blink", "params": {"on": True}, "miners": [miner.pk], "interval_s": 0}
        return {}

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        if principal.user is None or route.action in ("list", "retrieve"):
            return super().expected(principal, route)
        readers = principal.org == "a" and "miner:read" in principal.perms
        if not readers:
            return {404} if route.detail else {400}  # the job / the miners aren't visible
        if "miner:blink_led" not in principal.perms:
            return {403}
        return {200} if route.detail else {202}


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


def matrix_node(world: OrgWorld, i: int = 0) -> Model:
    """A fleet node awaiting confirmation (its fingerprint is known, so confirm succeeds)."""
    from fleet.models import FleetNode

    key = bytes([i, len(world.org.slug)]) + world.org.slug.encode().ljust(30, b"k")[:30]
    return FleetNode.unscoped.create(
        org=world.org, name=f"{world.org.slug} node {i}", identity_key=key, fingerprint=f"{i:016x}"
    )


class TestFleetNodes(RouteMatrix):
    """Nodes are seen with fleetnode:read; enrolling, confirming, revoking, pairing through and
    pinging a node need fleetnode:manage (owner and admin)."""

    viewset = fleet_node_views.FleetNodeViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return matrix_node(world, i)

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "confirm" and obj is not None:
            return {"fingerprint": getattr(obj, "fingerprint", "")}
        if action == "enrollment_codes":
            return {"org": world.org.pk}
        if action == "pair_miner":
            return {
                "site": world.sites[0].pk,
                "host": "127.0.0.1",
                "port": 80,
                "driver": "antminer",
            }
        return {}

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        wanted = super().expected(principal, route)
        if route.action in ("pair_miner", "ping") and wanted == CUSTOM_SUCCESS:
            return {400}  # the node awaits confirmation: it can't own miners or be pinged yet
        return wanted


class TestNodeGateway(RouteMatrix):
    """Public (nodes prove themselves, no user): the same answer for every principal — an
    empty body is a 400, a session call without the node's api key a 401."""

    viewset = fleet_gateway.NodeGatewayViewSet

    def expected(self, principal: Principal, route: ApiRoute) -> set[int]:
        return {401} if route.action.startswith("session_") else {400}

    def test_list_query_ceiling(  # type: ignore[override]
        self, org_a: OrgWorld, org_b: OrgWorld, django_assert_max_num_queries: Any
    ) -> None:
        """No list here: nothing a caller could page through."""
        assert not [r for r in api_routes() if r.viewset is self.viewset and r.action == "list"]


class TestFleetSettings(RouteMatrix):
    """One object per org, no id in the path: reading needs fleet:read in the caller's org,
    PUT/PATCH org:manage (org A named in the body: not a valid choice for anyone else)."""

    viewset = fleet_settings_api.FleetSettingsViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from fleet.models import FleetSettings

        row, _ = FleetSettings.unscoped.update_or_create(
            org=world.org, defaults={"poll_interval_s": 20 + i}
        )
        return row

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"org": world.org.pk, "poll_interval_s": 45}

    def leaks(self, principal: Principal, response: Any, obj: Model | None) -> Iterator[str]:
        """One object: the caller's own org's (their only one), never org A's for B."""
        org_a = obj.pk if obj is not None else None
        got = response.json()["org"]
        if principal.org == "a" and got != org_a:
            yield f"org A's caller got org {got}'s settings"
        if principal.org != "a" and got == org_a:
            yield "another org's caller got org A's settings"

    def test_list_query_ceiling(
        self, org_a: OrgWorld, org_b: OrgWorld, django_assert_max_num_queries: Any
    ) -> None:
        """No list: the one GET reads the grants, the org and the row."""
        self.make_object(org_a)
        client = api_client_for(org_a.users["viewer"])
        with django_assert_max_num_queries(6):
            assert client.get("/api/v1/fleet/settings/").status_code == 200


class LoopbackTargets:
    """Discovery payloads target 127.0.0.1, allowed as an operator would list a range."""

    def call(
        self, principal: Principal, route: ApiRoute, world: OrgWorld, obj: Model | None
    ) -> Any:
        from django.test import override_settings

        with override_settings(DISCOVERY_ALLOWED_NETWORKS=["127.0.0.0/8"]):
            return super().call(principal, route, world, obj)


class TestDiscoveryRuns(LoopbackTargets, RouteMatrix):
    """Runs are seen and started with discovery:run (owner, admin, operator); a run's site
    must be visible (org A's sites are not a valid choice for anyone else)."""

    viewset = discovery_views.DiscoveryRunViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from discovery.models import DiscoveryRun

        return DiscoveryRun.unscoped.create(
            org=world.org, site=world.sites[0], actor_label=world.org.slug, targets=["10.0.0.1"]
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"site": world.sites[0].pk, "targets": ["127.0.0.1"], "ports": [80]}


class TestDiscoveredDevices(RouteMatrix):
    """Found devices are seen with discovery:run; pairing them needs miner:pair."""

    viewset = discovery_views.DiscoveredDeviceViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from discovery.models import DiscoveredDevice

        return DiscoveredDevice.unscoped.create(
            org=world.org,
            site=world.sites[0],
            identifier=f"auto:{world.org.slug}{i}",
            host=f"127.0.0.{i + 1}",
            port=80,
            driver="protoos",
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"devices": [obj.pk if obj is not None else 1]}


class TestDiscoverySchedules(LoopbackTargets, RouteMatrix):
    """Saved ranges: seen, saved and removed with discovery:run."""

    viewset = discovery_views.SavedRangeViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from discovery.models import SavedRange

        return SavedRange.unscoped.create(
            org=world.org, site=world.sites[0], name=f"{world.org.slug} {i}", targets=["10.0.0.1"]
        )

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"site": world.sites[0].pk, "name": "rack", "targets": ["127.0.0.1"]}


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
