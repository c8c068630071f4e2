"""The proxy end to end: the ASGI app, a real session, a real simulated rig on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import ActivityEvent
from fleet.models import Miner
from tests.conftest import OrgWorld
from tests.fleet.conftest import ThreadedFleet
from tests.proxy.conftest import add_proto, browser_for
from tests.proxy.support import Browser

pytestmark = [pytest.mark.django_db(transaction=True)]


def url(miner: Miner, rest: str = "/api/v1/system") -> str:
    return f"/api-proxy/miners/{miner.pk}{rest}"


async def test_a_read_comes_back_with_our_headers_and_no_token(
    proto: Miner, org_a: OrgWorld
) -> None:
    browser = await browser_for(org_a.users["viewer"])
    reply = await browser.call("GET", url(proto), headers={"Accept": "application/json"})
    assert reply.status == 200, reply.body
    assert "product_name" in reply.json() or reply.json()
    assert reply.header("cache-control") == "no-store"
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header(
        "content-security-policy",
    ).startswith("sandbox")  # type: ignore[union-attr]
    assert reply.header("x-frame-options") == "DENY"
    for name in ("set-cookie", "server", "www-authenticate"):
        assert reply.header(name) is None
    assert b"access_token" not in reply.body and b"Bearer" not in reply.body


async def test_outside_the_org_is_404_and_anonymous_is_401(proto: Miner, org_b: OrgWorld) -> None:
    outsider = await browser_for(org_b.users["owner"])
    assert (await outsider.call("GET", url(proto))).status == 404
    assert (await outsider.call("GET", url(proto, "/api/v1/pools"))).status == 404
    assert (await Browser().call("GET", url(proto))).status == 401


async def test_api_token_works_and_a_bad_one_is_401(proto: Miner, org_a: OrgWorld) -> None:
    from accounts.actor import Actor
    from accounts.services.tokens import api_token_create

    user = org_a.users["operator"]
    issued = await sync_to_async(api_token_create)(
        actor=Actor.for_user(user), user=user, name="ci", org=org_a.org
    )
    secret = issued.secret
    reply = await Browser().call("GET", url(proto), headers={"Authorization": f"Token {secret}"})
    assert reply.status == 200
    put = await Browser().call(
        "PUT",
        url(proto, "/api/v1/mining/target"),
        body=b'{"power_target_watts": 3000}',
        headers={"Authorization": f"Token {secret}", "Content-Type": "application/json"},
    )
    assert put.status in (200, 202, 204), put.body
    bad = await Browser().call("GET", url(proto), headers={"Authorization": "Token nope"})
    assert bad.status == 401


async def test_permissions_follow_the_map(proto: Miner, org_a: OrgWorld) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    body, json_type = b'{"power_target_watts": 3000}', {"Content-Type": "application/json"}
    refused = await viewer.call(
        "PUT", url(proto, "/api/v1/mining/target"), body=body, headers=json_type
    )
    assert refused.status == 403 and refused.json()["permission"] == "miner:set_power_target"
    operator = await browser_for(org_a.users["operator"])
    done = await operator.call(
        "PUT", url(proto, "/api/v1/mining/target"), body=body, headers=json_type
    )
    assert done.status in (200, 202, 204), done.body
    unmapped = await operator.call(
        "PUT", url(proto, "/api/v1/network"), body=b"{}", headers=json_type
    )
    assert unmapped.status == 403 and unmapped.json()["permission"] == "miner:admin"


async def test_credentials_and_pools_are_never_proxied(proto: Miner, org_a: OrgWorld) -> None:
    owner = await browser_for(org_a.users["owner"])
    for method, rest in [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("PUT", "/api/v1/auth/change-password"),
        ("PUT", "/api/v1/auth/password"),
        ("POST", "/api/v1/pairing/auth-key"),
    ]:
        reply = await owner.call(method, url(proto, rest), body=b"{}")
        assert reply.status == 403, (method, rest)
        assert "credential" in reply.json()["error"]
    pools = await owner.call("PUT", url(proto, "/api/v1/pools/0"), body=b"{}")
    assert pools.status == 403
    assert pools.json()["action"] == f"/api/v1/miners/{proto.pk}/actions/set_pools/"


async def test_writes_need_same_origin_and_csrf(proto: Miner, org_a: OrgWorld) -> None:
    operator = await browser_for(org_a.users["operator"])
    path = url(proto, "/api/v1/system/locate")
    cross = await operator.call("POST", path, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    site = await operator.call("POST", path, headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status == 403
    no_origin = await operator.call(
        "POST", path, write_headers=False, headers={"X-CSRFToken": operator.csrf}
    )
    assert no_origin.status == 403
    no_csrf = await operator.call("POST", path, headers={"X-CSRFToken": "wrong" * 13})
    assert no_csrf.status == 403 and "CSRF" in no_csrf.json()["error"]
    ok = await operator.call("POST", path)
    assert ok.status < 300, ok.body


async def test_browser_navigations_are_refused(proto: Miner, org_a: OrgWorld) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    for headers in (
        {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "no-cors"},
        {"Accept": "text/html,application/xhtml+xml"},
    ):
        assert (await viewer.call("GET", url(proto), headers=headers)).status == 403


async def test_refused_targets(org_a: OrgWorld, rigs: ThreadedFleet, settings: Any) -> None:
    """Loopback without DISCOVERY_ALLOWED_NETWORKS; link-local, multicast, unspecified always."""
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    miner = await sync_to_async(add_proto)(org_a, rigs)
    viewer = await browser_for(org_a.users["viewer"])
    reply = await viewer.call("GET", url(miner))
    assert reply.status == 502 and "loopback" in reply.json()["error"]
    for host in ("169.254.169.254", "224.0.0.1", "0.0.0.0", "::1", "fe80::1"):
        await Miner.unscoped.filter(pk=miner.pk).aupdate(host=host)
        reply = await viewer.call("GET", url(miner))
        assert reply.status == 502, host
        assert "address refused" in reply.json()["error"]


@pytest.mark.parametrize(
    "raw",
    [
        b"/api/v1/../../../etc/passwd",
        b"/api/v1/%2e%2e/%2e%2e/admin",
        b"/api/v1%2f..%2f..%2fadmin",
        b"/api/v1/%5c..%5cadmin",
        b"/api/v1/x@169.254.169.254/",
        b"/api/v1/system%0d%0aX-Injected:%201",
        b"/api/v1//system",
    ],
)
async def test_path_traversal_attempts(proto: Miner, org_a: OrgWorld, raw: bytes) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    full = f"/api-proxy/miners/{proto.pk}".encode() + raw
    reply = await viewer.call("GET", full.decode("latin-1"), raw_path=full)
    assert reply.status == 400, raw


async def test_outside_the_native_prefix_is_404(proto: Miner, org_a: OrgWorld) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(proto, "/cgi-bin/get_system_info.cgi"))).status == 404


async def test_every_proxied_write_is_audited(proto: Miner, org_a: OrgWorld) -> None:
    operator = await browser_for(org_a.users["operator"])
    reply = await operator.call("POST", url(proto, "/api/v1/system/locate"))
    assert reply.status < 300
    event = await ActivityEvent.unscoped.filter(verb="miner.proxy_write").alast()
    assert event is not None and event.target_id == str(proto.pk)
    assert event.details == {
        "method": "POST",
        "path": "/api/v1/system/locate",
        "status": reply.status,
        "permission": "miner:blink_led",
    }
    assert event.actor_user_id == org_a.users["operator"].pk
    await operator.call("GET", url(proto))
    assert await ActivityEvent.unscoped.filter(verb="miner.proxy_write").acount() == 1


async def test_a_node_owned_miner_whose_node_is_offline_is_502(
    proto: Miner, org_a: OrgWorld
) -> None:
    from fleet.models import FleetNode

    node = await sync_to_async(FleetNode.unscoped.create)(
        org=org_a.org, site=org_a.sites[0], name="barn-node"
    )
    await Miner.unscoped.filter(pk=proto.pk).aupdate(node=node, managed_by=f"node:{node.pk}")
    viewer = await browser_for(org_a.users["viewer"])
    reply = await viewer.call("GET", url(proto))
    assert reply.status == 502  # through the node's control stream, which is not connected
    assert "barn-node" in reply.json()["error"]
