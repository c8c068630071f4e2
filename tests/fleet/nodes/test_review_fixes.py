"""What the acceptance review of fleet nodes found (issue 8), each pinned by a test: released
miners stop counting, the pairing address and site rules, reclaiming through discovery, identity
from the node's first report, node states, the API's answers, and the "Add node" page."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import ActivityEvent
from fleet.models import EnrollmentCode, FleetNode, Miner, MinerHealth, MinerLatest
from fleet.nodes import lifecycle, metrics, ownership, stream
from fleet.nodes.state import connection_state
from fleet.selectors import fleet_summary
from fleetnode.protocol import ProtocolError
from tests.accounts.pages.support import assert_csp_clean, html, signed_in
from tests.conftest import OrgWorld
from tests.fleet.nodes.support import GATEWAY, FakeNode, enroll, new_code, pair_antminer

pytestmark = pytest.mark.django_db


def _node(org: OrgWorld, site: int | None = None) -> FleetNode:
    """A confirmed node (of ``site`` when given), as the enrollment API leaves it."""
    fake = FakeNode()
    body = {"site": site} if site is not None else {}
    code = new_code(org.users["admin"], **body)
    response = APIClient().post(f"{GATEWAY}/register", fake.register_body(code), format="json")
    assert response.status_code == 201, response.content
    confirmed = _api(org).post(
        f"/api/v1/fleet-nodes/{response.json()['node_id']}/confirm",
        {"fingerprint": fake.fingerprint},
        format="json",
    )
    assert confirmed.status_code == 200, confirmed.content
    return FleetNode.unscoped.select_related("site").get(pk=response.json()["node_id"])


def _api(org: OrgWorld) -> APIClient:
    client = APIClient()
    client.force_authenticate(org.users["admin"])
    return client


# 1. released miners ----------------------------------------------------------------------------
def test_a_revoke_makes_released_miners_unknown_and_drops_their_hashrate(org_a: OrgWorld) -> None:
    node = _node(org_a)
    miner = pair_antminer(org_a, node, "10.9.1.5")
    Miner.unscoped.filter(pk=miner.pk).update(health=MinerHealth.OK)
    MinerLatest.objects.create(
        miner=miner, hashrate_ths=110.0, power_w=3200.0, max_temp_c=70.0, updated_at=timezone.now()
    )
    before = fleet_summary(Miner.unscoped.filter(org=org_a.org))["totals"]
    assert before["hashrate_ths"] == 110.0 and before["reporting"] == 1

    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=node)

    miner.refresh_from_db()
    assert (miner.managed_by, miner.node_id, miner.health) == ("unassigned", None, "unknown")
    latest = MinerLatest.objects.get(miner=miner)
    assert (latest.hashrate_ths, latest.power_w, latest.updated_at) == (None, None, None)
    after = fleet_summary(Miner.unscoped.filter(org=org_a.org))["totals"]
    assert (after["hashrate_ths"], after["power_w"], after["reporting"]) == (0, 0, 0)
    assert after["health"] == {"unknown": 1}


# 2. the pairing address rule -------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["169.254.169.254", "224.0.0.1", "0.0.0.0", "8.8.8.8", "127.0.0.1", "fe80::1"]
)
def test_pairing_refuses_addresses_the_dial_rule_refuses(org_a: OrgWorld, host: str) -> None:
    node = _node(org_a)
    response = _api(org_a).post(
        f"/api/v1/fleet-nodes/{node.pk}/miners/",
        {"site": org_a.sites[0].pk, "host": host, "port": 80, "driver": "antminer"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert host in response.json()["host"][0]
    assert not Miner.unscoped.filter(org=org_a.org).exists()


def test_pairing_takes_what_discovery_allowed_networks_lists(
    org_a: OrgWorld, settings: Any
) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert pair_antminer(org_a, _node(org_a), "127.3.0.9").host == "127.3.0.9"


# 6. the node's site ----------------------------------------------------------------------------
def test_a_node_of_one_site_refuses_a_miner_of_another(org_a: OrgWorld) -> None:
    node = _node(org_a, site=org_a.sites[0].pk)
    assert node.site_id == org_a.sites[0].pk
    response = _api(org_a).post(
        f"/api/v1/fleet-nodes/{node.pk}/miners/",
        {"site": org_a.sites[1].pk, "host": "10.9.1.6", "port": 80, "driver": "antminer"},
        format="json",
    )
    assert response.status_code == 400
    assert org_a.sites[0].name in response.json()["site"][0]
    assert pair_antminer(org_a, node, "10.9.1.6", site=0).site_id == org_a.sites[0].pk


def test_a_released_miner_is_not_moved_to_another_site(org_a: OrgWorld) -> None:
    old = _node(org_a)
    miner = pair_antminer(org_a, old, "10.9.1.7", site=1)
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=old)
    new = _node(org_a)
    with pytest.raises(ApplicationError, match="belongs to site") as refused:
        pair_antminer(org_a, new, "10.9.1.7", site=0)
    assert "site" in refused.value.errors
    miner.refresh_from_db()
    assert (miner.site_id, miner.managed_by) == (org_a.sites[1].pk, "unassigned")
    assert pair_antminer(org_a, new, "10.9.1.7", site=1).pk == miner.pk  # its own site: claimed


# 3. reclaiming through discovery ---------------------------------------------------------------
def test_discovery_through_the_replacement_node_reassigns_a_released_miner(
    org_a: OrgWorld,
) -> None:
    from discovery.models import DiscoveredDevice
    from discovery.pairing import PAIRED, device_pair

    old = _node(org_a)
    miner = pair_antminer(org_a, old, "10.9.1.8")
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=old)
    new = _node(org_a)
    device = DiscoveredDevice.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        node=new,
        identifier=miner.identifier,
        host="10.9.1.9",  # DHCP moved it
        port=80,
        driver="antminer",
    )
    outcome, message, paired = device_pair(
        actor=Actor.for_user(org_a.users["admin"]), device_id=device.pk, node=new
    )
    assert outcome == PAIRED, message
    miner.refresh_from_db()
    assert paired is not None and paired.pk == miner.pk
    assert (miner.node_id, miner.managed_by, miner.host) == (new.pk, new.managed_by, "10.9.1.9")
    assert [m["id"] for m in ownership.assign_payload(new, None)["miners"]] == [miner.pk]
    assert ActivityEvent.unscoped.filter(verb="miner.add", target_id=str(miner.pk)).count() == 2


# 4. identity from the node's first report ------------------------------------------------------
def test_the_first_report_brings_identity_and_pairing_says_it_is_pending(
    org_a: OrgWorld,
) -> None:
    node = _node(org_a)
    response = _api(org_a).post(
        f"/api/v1/fleet-nodes/{node.pk}/miners/",
        {"site": org_a.sites[0].pk, "host": "10.9.1.10", "port": 80, "driver": "antminer"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["identity"] == "pending" and body["model"] == ""
    status = {"health": "ok", "state": "mining", "hashrate_ths": 100.0}
    identity = {
        "make": "Bitmain",
        "model": "Antminer S19",
        "firmware": "2024.1",
        "serial": "SN123",
        "mac": "AA-BB-CC-00-11-22",
        "hostname": "rig-10",
    }
    outcome = {"miner_id": body["id"], "started": 1.0e9, "status": status, "identity": identity}
    bad = {"miner_id": body["id"], "started": 1.0e9, "status": status, "identity": {"model": 5}}
    ack = stream.telemetry_handle(
        node.pk, {"type": "telemetry_batch", "batch_seq": 1, "outcomes": [bad]}
    )
    assert ack["accepted"] == 1
    assert Miner.unscoped.get(pk=body["id"]).model == ""  # a malformed identity is ignored
    stream.telemetry_handle(
        node.pk, {"type": "telemetry_batch", "batch_seq": 2, "outcomes": [outcome]}
    )
    miner = Miner.unscoped.get(pk=body["id"])
    assert (miner.make, miner.model, miner.firmware, miner.serial) == (
        "Bitmain",
        "Antminer S19",
        "2024.1",
        "SN123",
    )
    assert (miner.mac, miner.hostname, miner.identifier) == (
        "aa:bb:cc:00:11:22",
        "rig-10",
        "mac:aa:bb:cc:00:11:22",
    )
    assert miner.device_info["model"] == "Antminer S19"
    shown = _api(org_a).get(f"/api/v1/miners/{miner.pk}/").json()
    assert shown["model"] == "Antminer S19"


# 5. states -------------------------------------------------------------------------------------
def test_revoked_and_pending_nodes_have_their_own_state(org_a: OrgWorld) -> None:
    now = timezone.now()
    assert connection_state(True, now, status="revoked") == "revoked"
    assert connection_state(False, None, status="awaiting_confirmation") == "pending"
    assert connection_state(True, now - dt.timedelta(seconds=1)) == "online"
    node = _node(org_a)
    FleetNode.unscoped.filter(pk=node.pk).update(last_seen_at=now, channel_name="x")
    enroll(org_a.users["admin"], confirm=False)
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=node)
    body = _api(org_a).get("/api/v1/fleet-nodes/").json()
    states = {row["status"]: (row["state"], row["connected"]) for row in body["results"]}
    assert states == {"revoked": ("revoked", False), "awaiting_confirmation": ("pending", False)}
    family = next(iter(metrics.NodeCollector().collect()))
    seen = {(s.labels["status"], s.labels["state"]) for s in family.samples}
    assert ("revoked", "revoked") in seen and ("awaiting_confirmation", "pending") in seen
    assert not any(state == "stale" for _status, state in seen)


# 7. heartbeats ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "beat",
    [
        {"type": "heartbeat", "cpu_percent": "lots", "uptime_s": [1]},
        {"type": "heartbeat", "health": {"cpu_percent": "lots"}},
        {"type": "heartbeat", "health": {"uptime_s": [1]}},
        {"type": "heartbeat", "health": []},
    ],
)
def test_a_heartbeat_with_wrong_types_is_malformed(beat: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as bad:
        stream.heartbeat_fields(beat)
    assert bad.value.code == 4400


def test_a_well_formed_heartbeat_is_stored() -> None:
    fields = stream.heartbeat_fields({"type": "heartbeat", "health": {"cpu_percent": 3, "x": 1}})
    assert fields["health"] == {"cpu_percent": 3.0}


# 8. the API ------------------------------------------------------------------------------------
def test_ping_of_a_revoked_node_is_a_400_and_revoke_reports_the_state_after(
    org_a: OrgWorld,
) -> None:
    node = _node(org_a)
    FleetNode.unscoped.filter(pk=node.pk).update(channel_name="live", last_seen_at=timezone.now())
    client = _api(org_a)
    revoked = client.post(f"/api/v1/fleet-nodes/{node.pk}/revoke/", {}, format="json")
    assert revoked.status_code == 200
    assert (revoked.json()["connected"], revoked.json()["state"]) == (False, "revoked")
    ping = client.post(f"/api/v1/fleet-nodes/{node.pk}/ping/")
    assert ping.status_code == 400
    assert "revoked" in ping.json()["node"][0]


def test_commands_are_paginated_and_the_list_filters_and_orders(org_a: OrgWorld) -> None:
    first, second = _node(org_a), _node(org_a)
    FleetNode.unscoped.filter(pk=first.pk).update(name="zulu")
    FleetNode.unscoped.filter(pk=second.pk).update(name="alpha")
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=first)
    client = _api(org_a)
    page = client.get(f"/api/v1/fleet-nodes/{second.pk}/commands/").json()
    assert set(page) >= {"count", "results"} and page["count"] == 0
    listed = client.get("/api/v1/fleet-nodes/?status=revoked").json()["results"]
    assert [row["id"] for row in listed] == [first.pk]
    ordered = client.get("/api/v1/fleet-nodes/?ordering=-name").json()["results"]
    assert [row["name"] for row in ordered] == ["zulu", "alpha"]
    assert client.get("/api/v1/fleet-nodes/?status=nope").status_code == 400
    assert client.get("/api/v1/fleet-nodes/?ordering=secret").status_code == 400


def test_the_schema_documents_the_node_list_filters_and_command_pages(org_a: OrgWorld) -> None:
    schema = _api(org_a).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    listed = {p["name"] for p in paths["/api/v1/fleet-nodes/"]["get"]["parameters"]}
    assert {"status", "ordering", "page"} <= listed
    commands = paths["/api/v1/fleet-nodes/{id}/commands/"]["get"]
    assert "page" in {p["name"] for p in commands["parameters"]}
    assert "status" not in {p["name"] for p in commands["parameters"]}


# 10. the add-node page -------------------------------------------------------------------------
def test_add_node_is_a_page_prg_prints_a_runnable_command_and_codes_can_be_cancelled(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    client = signed_in(org_a.users["admin"])
    page = client.get("/nodes/add/")
    assert page.status_code == 200 and "Create code" in html(page)
    assert_csp_clean(page)
    minted = client.post("/nodes/add/", {"site": org_a.sites[0].pk})
    assert minted.status_code == 302 and minted["Location"].endswith("/nodes/add/")
    shown = html(client.get("/nodes/add/"))
    assert f"{sys.executable} -m fleetnode --state-dir" in shown
    assert "--name" in shown and 'data-copy="enroll-command"' in shown
    assert "rwe_" in shown
    again = html(client.get("/nodes/add/"))  # a reload: no new code, the old one not shown
    assert "rwe_" not in again
    assert EnrollmentCode.unscoped.filter(org=org_a.org).count() == 1
    row = EnrollmentCode.unscoped.get(org=org_a.org)
    assert f"/nodes/codes/{row.pk}/cancel/" in again
    # another org's code: 404, untouched
    other = EnrollmentCode.unscoped.create(
        org=org_b.org, code_hash="x" * 64, expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert client.post(f"/nodes/codes/{other.pk}/cancel/").status_code == 404
    assert client.post(f"/nodes/codes/{row.pk}/cancel/").status_code == 302
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.expires_at <= timezone.now() < other.expires_at
    assert ActivityEvent.unscoped.filter(verb="fleetnode.enrollment_code_cancel").count() == 1
    assert f"/nodes/codes/{row.pk}/cancel/" not in html(client.get("/nodes/add/"))
    # a viewer can't cancel or mint
    viewer = signed_in(org_a.users["viewer"])
    assert viewer.get("/nodes/add/").status_code in (403, 404)


def test_node_pages_uptime_revoked_hidden_and_reject_wording(org_a: OrgWorld) -> None:
    node = _node(org_a)
    FleetNode.unscoped.filter(pk=node.pk).update(
        health={"cpu_percent": 12.0, "uptime_s": 3 * 86400 + 4 * 3600 + 5}, name="north-gw"
    )
    client = signed_in(org_a.users["admin"])
    assert "up 3 d 4 h" in html(client.get(f"/nodes/{node.pk}/"))
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=node)
    detail = html(client.get(f"/nodes/{node.pk}/"))
    assert "up 3 d" not in detail and "CPU 12" not in detail and "Revoked" in detail
    assert f"/nodes/{node.pk}/" not in html(client.get("/nodes/"))
    shown = html(client.get("/nodes/?show=revoked"))
    assert f"/nodes/{node.pk}/" in shown
    pending = enroll(org_a.users["admin"], confirm=False)
    page = html(client.get(f"/nodes/{pending.node_id}/"))
    assert "Reject registration" in page and "Revoke node" not in page
    assert "Pending" in page
    done = client.post(f"/nodes/{pending.node_id}/revoke/", follow=True)
    assert "registration of" in html(done) and "rejected" in html(done)
    assert "its miners are released" not in html(done)
