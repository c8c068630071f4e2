"""Rescanning a fleet that is already paired, end to end against simulated rigs on 127.x on
shifted ports, as ``make run`` serves them (ProtoOS https and http, Antminer web and RPC):
the miners stay where they are and keep polling, every device shows as the miner it is, run
counters say "seen before", pairing again adds no miner; a real DHCP move is followed with a
port and scheme from one report."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.actor import Actor
from discovery import cloud, pairing, services
from discovery.models import DiscoveredDevice, DiscoveryRun, Outcome, RunStatus
from fleet.models import Miner
from fleet.services import polling
from fleet.services.miners import miner_follow
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.conftest import PASSWORD, ThreadedFleet

pytestmark = pytest.mark.usefixtures("allow_loopback")

OFFSET = 23000  # the demo's: https 23443, http 23080, RPC 27028


@pytest.fixture(scope="module")
def sims() -> Iterator[ThreadedFleet]:
    fleet = ThreadedFleet(
        proto=2, antminer=2, password=PASSWORD, port_offset=OFFSET, stats_delay=0.0, seed=17
    )
    yield fleet
    fleet.stop()


def driver_of(entry: dict[str, Any]) -> str:
    return "protoos" if entry["kind"] == "protoos" else "antminer"


def add_by_api(world: OrgWorld, entry: dict[str, Any]) -> dict[str, Any]:
    """As the reviewer did: host, the rig's web port, driver and its password."""
    response = api_client_for(world.users["operator"]).post(
        "/api/v1/miners/",
        {
            "site": world.sites[0].pk,
            "host": entry["host"],
            "port": entry["ports"].get("https", entry["ports"]["http"]),
            "driver": driver_of(entry),
            "password": PASSWORD,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def pair_all(world: OrgWorld, sims: ThreadedFleet) -> dict[str, Miner]:
    ids = [add_by_api(world, entry)["id"] for entry in sims.inventory]
    return {m.host: m for m in Miner.unscoped.filter(pk__in=ids)}


def spare_host(sims: ThreadedFleet, n: int = 1) -> str:
    """The ``n``-th address after the rigs' (nothing answers there)."""
    top = max(ipaddress.ip_address(e["host"]) for e in sims.inventory)
    return str(top + n)


def cloud_run(world: OrgWorld, sims: ThreadedFleet, spare: int = 0) -> DiscoveryRun:
    """A run over the rigs' addresses (and ``spare`` free ones after them) on every port the
    simulators serve."""
    ports = sorted({p for e in sims.inventory for p in e["ports"].values()})
    hosts = [e["host"] for e in sims.inventory]
    hosts += [spare_host(sims, n) for n in range(1, spare + 1)]
    run = services.run_create(
        actor=Actor.for_user(world.users["operator"]),
        site=world.sites[0],
        target_list=hosts,
        ports=ports,
    )
    result = cloud.run_in_cloud(run)
    assert result is not None and (result.status, result.outcome) == (
        RunStatus.DONE,
        Outcome.OK,
    ), result.error
    return result


def endpoint(miner: Miner) -> tuple[str, int, str, Any]:
    miner.refresh_from_db()
    return (miner.host, miner.port, miner.scheme, miner.device_info.get("scheme"))


def test_adding_a_stock_antminer_uses_its_password_to_know_it(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    """Its MAC and serial are behind the web login: identification logs in with the password
    it was given, so the miner is known by its MAC (never a weak ``auto:`` identity)."""
    entry = next(e for e in sims.inventory if e["kind"] == "antminer")
    body = add_by_api(org_a, entry)
    assert body["identifier"] == f"mac:{entry['mac'].lower()}"
    assert (body["mac"], body["serial"]) == (entry["mac"].lower(), entry["serial"])
    assert body["hostname"]


def test_a_rescan_leaves_paired_miners_alone_and_shows_them_paired(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    miners = pair_all(org_a, sims)
    before = {host: endpoint(m) for host, m in miners.items()}
    proto = [e for e in sims.inventory if e["kind"] == "protoos"]
    for entry in proto:  # the rig answers on its https and its http port: paired on https
        assert before[entry["host"]][1:] == (entry["ports"]["https"], "https", "https")

    for _rescan in range(2):
        run = cloud_run(org_a, sims)
        assert {host: endpoint(m) for host, m in miners.items()} == before
        # all paired: found, every one "seen before", none new
        assert (run.found, run.new, run.updated) == (len(miners), 0, len(miners))
        devices = {d.host: d for d in DiscoveredDevice.unscoped.filter(run=run)}
        assert set(devices) == set(miners) and DiscoveredDevice.unscoped.count() == len(miners)
        for entry in sims.inventory:
            device, miner = devices[entry["host"]], miners[entry["host"]]
            assert device.miner_id == miner.pk, entry  # shown as the miner, not "New"
            assert (device.port, device.scheme) == (miner.port, miner.scheme)  # its endpoint
            assert (device.mac, device.serial) == (entry["mac"].lower(), entry["serial"])

    client = Client()
    client.force_login(org_a.users["operator"])
    page = client.get(f"/discovery/?run={run.pk}").content.decode()
    assert all(m.name in page for m in miners.values()) and "data-device-pairing>New<" not in page
    assert '<span data-run-field="new">0</span>' in page

    summary = polling.poll_shard([m.pk for m in miners.values()])
    assert summary.ok == len(miners), summary
    assert {Miner.unscoped.get(pk=m.pk).health for m in miners.values()} == {"ok"}

    # pairing them again (selected, and "pair all new") adds no miner
    actor = Actor.for_user(org_a.users["operator"])
    job = pairing.pairing_create(
        actor=actor, org=org_a.org, devices=list(devices.values()), password=PASSWORD, run=run
    )
    pairing.pairing_execute(job.pk)
    assert Miner.unscoped.count() == len(miners)
    assert not DiscoveredDevice.unscoped.filter(run=run, miner__isnull=True).exists()
    assert {endpoint(m) for m in miners.values()} == set(before.values())


def test_a_weak_device_at_a_miners_rpc_port_pairs_as_that_miner(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    """A device row only the RPC port identified (no MAC), not linked to the miner (a row from
    an older scan): pairing it matches the miner at that rig's address, never a second one."""
    entry = next(e for e in sims.inventory if e["kind"] == "antminer")
    miner = Miner.unscoped.get(pk=add_by_api(org_a, entry)["id"])
    device = DiscoveredDevice.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="auto:an-older-scan",
        host=entry["host"],
        port=entry["ports"]["rpc"],
        scheme="tcp",
        driver="antminer",
    )
    before = endpoint(miner)
    outcome, message, paired = pairing.device_pair(
        actor=Actor.for_user(org_a.users["operator"]), device_id=device.pk, node=None
    )
    assert (outcome, paired) == (pairing.PAIRED, miner), message
    assert Miner.unscoped.count() == 1 and endpoint(miner) == before
    device.refresh_from_db()
    assert device.miner_id == miner.pk


def test_a_dhcp_move_is_followed_with_one_reports_port_and_scheme(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    miners = pair_all(org_a, sims)
    entry = next(e for e in sims.inventory if e["kind"] == "protoos")
    moved = miners[entry["host"]]
    old = spare_host(sims)  # nothing answers there: the rig's address before
    Miner.unscoped.filter(pk=moved.pk).update(host=old)
    cloud_run(org_a, sims, spare=1)
    assert endpoint(moved) == (entry["host"], entry["ports"]["https"], "https", "https")
    assert polling.poll_shard([moved.pk]).ok == 1


def test_miner_follow_takes_a_report_of_the_miners_kind_of_port(org_a: OrgWorld) -> None:
    miner = Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="mac:00:11:22:33:44:55",
        name="stock",
        host="127.0.8.1",
        port=80,
        scheme="http",
        driver="antminer",
        device_info={"scheme": "http", "ports": {"rpc": 4028, "web": 80}},
    )
    # the same host on another port: not a move
    assert not miner_follow(miner, [("127.0.8.1", 4028, "tcp")])
    # only the RPC port answered at the new host: nothing to dial the web CGI at
    assert not miner_follow(miner, [("127.0.8.2", 4028, "tcp")])
    assert endpoint(miner) == ("127.0.8.1", 80, "http", "http")
    assert miner_follow(miner, [("127.0.8.2", 4028, "tcp"), ("127.0.8.2", 80, "http")])
    assert endpoint(miner) == ("127.0.8.2", 80, "http", "http")
    proto = Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="mac:00:11:22:33:44:66",
        name="proto",
        host="127.0.8.3",
        port=443,
        scheme="https",
        driver="protoos",
        device_info={"scheme": "https"},
    )
    assert miner_follow(proto, [("127.0.8.4", 80, "http"), ("127.0.8.4", 443, "https")])
    assert endpoint(proto) == ("127.0.8.4", 443, "https", "https")
    assert miner_follow(proto, [("127.0.8.5", 8080, "http")])  # one report: its port, its scheme
    assert endpoint(proto) == ("127.0.8.5", 8080, "http", "http")
