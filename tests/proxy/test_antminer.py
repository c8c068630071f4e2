"""Stock Antminer through the proxy: the CGI map, server-side digest auth, the same rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import ActivityEvent
from accounts.permissions import CATALOG
from fleet.models import Miner
from fleet.services.credentials import credentials_store
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.proxy.conftest import browser_for
from tests.proxy.support import Browser

ROOT = Path(__file__).resolve().parents[2]
MINER_APIS = ROOT / "specs" / "miner-apis.md"  # the repo copy of ../shared/docs
JSON = {"Content-Type": "application/json"}


def add_antminer(org: OrgWorld, fleet: ThreadedFleet, password: str = PASSWORD) -> Miner:
    entry = next(e for e in fleet.inventory if e["kind"] == "antminer")
    rpc, web = entry["ports"]["rpc"], entry["ports"]["http"]
    miner = Miner.unscoped.create(
        org=org.org,
        site=org.sites[0],
        identifier=f"mac:{entry['mac']}-{org.org.slug}",
        name="s19",
        host=entry["host"],
        port=rpc,  # stored by its RPC port, as a scan of 4028 pairs it
        scheme="http",
        driver="antminer",
        device_info={"ports": {"rpc": rpc, "web": web}},
    )
    credentials_store(miner, username="root", password=password)
    return miner


@pytest.fixture
def s19(org_a: OrgWorld, rigs: ThreadedFleet, loopback_allowed: None) -> Miner:
    return add_antminer(org_a, rigs)


def url(miner: Miner, cgi: str) -> str:
    return f"/api-proxy/miners/{miner.pk}/cgi-bin/{cgi}"


def on_rig(rigs: ThreadedFleet, host: str, read: Any) -> Any:
    async def apply() -> Any:
        return read(rigs.fleet.miner(host))

    return rigs.call(apply())


# --- the map: data with a contract test -------------------------------------------------


def simulator_cgis() -> set[tuple[str, str]]:
    from miners.sim.antminer import routes

    return {
        (method, path.removeprefix("/cgi-bin"))
        for path, methods in routes._exact.items()
        if path.startswith("/cgi-bin/")
        for method in methods
    }


def documented_cgis() -> set[str]:
    return {f"/{name}" for name in re.findall(r"/cgi-bin/([a-z_]+\.cgi)", MINER_APIS.read_text())}


def test_every_cgi_the_simulator_serves_is_classified() -> None:
    from proxy.pathmap import ANTMINER

    assert simulator_cgis() - set(ANTMINER) == set()


def test_every_documented_cgi_is_classified() -> None:
    from proxy.pathmap import ANTMINER

    mapped = {path for _method, path in ANTMINER}
    assert documented_cgis() - mapped == set()


def test_every_outcome_is_a_permission_or_a_refusal() -> None:
    from proxy.pathmap import ANTMINER, REFUSALS

    for outcome in ANTMINER.values():
        assert outcome in REFUSALS or outcome in CATALOG


@pytest.mark.parametrize(
    ("method", "path", "permission", "refusal", "write"),
    [
        ("GET", "/stats.cgi", "miner:read", None, False),
        ("GET", "/get_kernel_log.cgi", "miner:download_logs", None, False),
        ("POST", "/blink.cgi", "miner:blink_led", None, True),
        ("POST", "/reboot.cgi", "miner:reboot", None, True),
        ("GET", "/reboot.cgi", None, "unsafe-get", False),
        ("POST", "/passwd.cgi", None, "credential", True),
        ("POST", "/set_miner_conf.cgi", None, "pools", True),
        ("GET", "/unknown.cgi", "miner:admin", None, True),  # CGIs change state on GET
        ("POST", "/unknown.cgi", "miner:admin", None, True),
    ],
)
def test_classify(
    method: str, path: str, permission: str | None, refusal: str | None, write: bool
) -> None:
    from proxy.pathmap import classify

    decision = classify("antminer", method, path)
    assert (decision.permission, decision.refusal, decision.write) == (permission, refusal, write)


# --- end to end against the simulated stock firmware ------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)  # the e2e tests below


@pytestmark_db
async def test_a_read_is_answered_with_server_side_digest(s19: Miner, org_a: OrgWorld) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    reply = await viewer.call("GET", url(s19, "stats.cgi"), headers={"Accept": "application/json"})
    assert reply.status == 200, reply.body
    assert reply.json()["STATS"][0]["chain_num"] >= 1
    assert reply.header("www-authenticate") is None and reply.header("server") is None
    assert reply.header("cache-control") == "no-store"
    assert PASSWORD.encode() not in reply.body
    again = await viewer.call("GET", url(s19, "summary.cgi"))  # the challenge is reused
    assert again.status == 200 and "SUMMARY" in again.json()


@pytestmark_db
async def test_a_stale_challenge_is_answered_once(
    s19: Miner, org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miners.sim import antminer as sim

    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(s19, "pools.cgi"))).status == 200
    monkeypatch.setattr(sim, "SECRET", b"rotated" * 4)  # every nonce we hold is now foreign
    assert (await viewer.call("GET", url(s19, "pools.cgi"))).status == 200


@pytestmark_db
async def test_wrong_stored_credentials_are_a_visible_502(
    org_a: OrgWorld, rigs: ThreadedFleet, loopback_allowed: None
) -> None:
    miner = await sync_to_async(add_antminer)(org_a, rigs, "not-the-password")
    viewer = await browser_for(org_a.users["viewer"])
    reply = await viewer.call("GET", url(miner, "stats.cgi"))
    assert reply.status == 502
    assert reply.json()["error"] == "credentials rejected — update them"
    assert b"not-the-password" not in reply.body


@pytestmark_db
async def test_a_write_needs_its_permission_and_is_audited(
    s19: Miner, org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    body = b'{"blink": "true"}'
    viewer = await browser_for(org_a.users["viewer"])
    refused = await viewer.call("POST", url(s19, "blink.cgi"), body=body, headers=JSON)
    assert refused.status == 403 and refused.json()["permission"] == "miner:blink_led"
    tech = await browser_for(org_a.users["field_tech"])
    done = await tech.call("POST", url(s19, "blink.cgi"), body=body, headers=JSON)
    assert done.status == 200 and done.json()["code"] == "B000", done.body
    assert on_rig(rigs, s19.host, lambda m: m.locate_on(rigs.fleet.clock.now()))
    event = await ActivityEvent.unscoped.aget(verb="miner.proxy_write", target_id=str(s19.pk))
    assert event.details == {
        "method": "POST",
        "path": "/cgi-bin/blink.cgi",
        "status": 200,
        "permission": "miner:blink_led",
    }
    assert event.actor_user_id == org_a.users["field_tech"].pk


@pytestmark_db
async def test_credentials_pools_and_unsafe_gets_are_never_proxied(
    s19: Miner, org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    owner = await browser_for(org_a.users["owner"])
    passwd = b'{"curPwd": "%s", "newPwd": "x", "confirmPwd": "x"}' % PASSWORD.encode()
    reply = await owner.call("POST", url(s19, "passwd.cgi"), body=passwd, headers=JSON)
    assert reply.status == 403
    assert on_rig(rigs, s19.host, lambda m: m.password) == PASSWORD
    conf = b'{"pools": [{"url": "stratum+tcp://evil.example:3333", "user": "x", "pass": "x"}]}'
    reply = await owner.call("POST", url(s19, "set_miner_conf.cgi"), body=conf, headers=JSON)
    assert reply.status == 403
    assert reply.json()["action"] == f"/api/v1/miners/{s19.pk}/actions/set_pools/"
    assert "evil" not in str(on_rig(rigs, s19.host, lambda m: [p.url for p in m.pools]))
    reboot = await owner.call("GET", url(s19, "reboot.cgi"))
    assert reboot.status == 405
    assert await ActivityEvent.unscoped.filter(verb="miner.proxy_write").acount() == 0


@pytestmark_db
async def test_an_unmapped_cgi_needs_admin_even_on_get_and_is_audited(
    s19: Miner, org_a: OrgWorld
) -> None:
    operator = await browser_for(org_a.users["operator"])
    refused = await operator.call("GET", url(s19, "get_status_api.cgi"))
    assert refused.status == 403 and refused.json()["permission"] == "miner:admin"
    admin = await browser_for(org_a.users["admin"])
    cross = await admin.call(
        "GET", url(s19, "get_status_api.cgi"), headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status == 403  # handled as a write: same-origin only
    reply = await admin.call("GET", url(s19, "get_status_api.cgi"))
    assert reply.status == 404  # the stock firmware has no such CGI; the call was made
    event = await ActivityEvent.unscoped.aget(verb="miner.proxy_write")
    assert event.details["permission"] == "miner:admin" and event.details["status"] == 404


@pytestmark_db
async def test_another_org_gets_404_and_paths_outside_the_prefix_404(
    s19: Miner, org_a: OrgWorld, org_b: OrgWorld
) -> None:
    outsider = await browser_for(org_b.users["owner"])
    reply = await outsider.call("GET", url(s19, "stats.cgi"))
    assert reply.status == 404 and b"s19" not in reply.body
    owner = await browser_for(org_a.users["owner"])
    assert (await owner.call("GET", f"/api-proxy/miners/{s19.pk}/api/v1/system")).status == 404
    assert (await Browser().call("GET", url(s19, "stats.cgi"))).status == 401


@pytestmark_db
async def test_the_kernel_log_needs_download_logs(s19: Miner, org_a: OrgWorld) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(s19, "get_kernel_log.cgi"))).status == 403
    tech = await browser_for(org_a.users["field_tech"])
    reply = await tech.call("GET", url(s19, "get_kernel_log.cgi"))
    assert reply.status == 200
    assert (reply.header("content-type") or "").startswith("text/plain")


@pytestmark_db
def test_the_miners_api_says_where_each_miners_api_is(
    s19: Miner, proto: Miner, org_a: OrgWorld, org_b: OrgWorld, api: Any
) -> None:
    client = api()
    client.force_authenticate(org_a.users["viewer"])
    assert client.get(f"/api/v1/miners/{s19.pk}/").json()["proxy_url"] == (
        f"/api-proxy/miners/{s19.pk}/cgi-bin"
    )
    assert client.get(f"/api/v1/miners/{proto.pk}/").json()["proxy_url"] == (
        f"/api-proxy/miners/{proto.pk}/api/v1"
    )
    Miner.unscoped.filter(pk=proto.pk).update(driver="pyasic")
    assert client.get(f"/api/v1/miners/{proto.pk}/").json()["proxy_url"] is None
    outsider = api()
    outsider.force_authenticate(org_b.users["owner"])
    assert outsider.get(f"/api/v1/miners/{s19.pk}/").status_code == 404
