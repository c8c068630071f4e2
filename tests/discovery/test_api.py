"""The Discovery REST API (contracts.md): refusals name the target, runs and devices are
scoped to the caller's org (404 outside it), pairing is a job, pairing races have one winner."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from accounts.actor import Actor
from discovery import pairing
from discovery.models import DiscoveredDevice, DiscoveryRun, RunStatus
from fleet.models import Miner
from tests.conftest import OrgWorld, api_client_for, make_world
from tests.discovery.conftest import NodeWorld, confirmed_node, node_run

RUNS = "/api/v1/discovery/runs/"
DEVICES = "/api/v1/discovery/devices/"


def start(world: OrgWorld, targets: list[str], user: str = "operator", **extra: Any) -> Any:
    return api_client_for(world.users[user]).post(
        RUNS, {"site": world.sites[0].pk, "targets": targets, **extra}, format="json"
    )


@pytest.mark.usefixtures("allow_loopback")
def test_create_a_run(org_a: OrgWorld) -> None:
    response = start(org_a, ["127.0.3.1-8"], ports=[80, 4028])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == RunStatus.QUEUED and body["expanded_count"] == 8
    assert body["total"] == 16 and body["ports"] == [80, 4028] and body["via"] == "cloud"
    detail = api_client_for(org_a.users["viewer"]).get(f"{RUNS}{body['id']}/")
    assert detail.status_code == 404  # a viewer can't run discovery, nor see runs
    detail = api_client_for(org_a.users["admin"]).get(f"{RUNS}{body['id']}/")
    assert detail.status_code == 200 and detail.json()["probed"] == 0


@pytest.mark.parametrize(
    ("targets", "extra", "named"),
    [
        (["8.8.8.8"], {}, "8.8.8.8"),
        (["127.0.0.1"], {}, "127.0.0.1"),
        (["169.254.169.254"], {}, "169.254.169.254"),
        (["10.0.0.0/16"], {}, "10.0.0.0/16"),
        (["10.0.0.1-10.0.19.137"], {}, "10.0.0.1-10.0.19.137"),
        (["localhost"], {}, "localhost"),
        (["127.0.0.1"], {"ports": list(range(1000, 1300))}, "ports"),
    ],
)
def test_every_refusal_is_a_400_naming_the_target(
    org_a: OrgWorld, targets: list[str], extra: dict[str, Any], named: str
) -> None:
    response = start(org_a, targets, **extra)
    assert response.status_code == 400, response.content
    assert named in response.content.decode()
    assert not DiscoveryRun.unscoped.exists()


def test_another_orgs_site_or_node_is_a_400(org_a: OrgWorld, org_b: OrgWorld) -> None:
    node_b = confirmed_node(org_b)
    response = api_client_for(org_a.users["owner"]).post(
        RUNS, {"site": org_b.sites[0].pk, "targets": ["10.0.0.1"]}, format="json"
    )
    assert response.status_code == 400 and "site" in response.json()
    response = start(org_a, ["10.0.0.1"], user="owner", node=node_b.pk)
    assert response.status_code == 400 and "node" in response.json()


def test_runs_and_devices_of_another_org_are_404(alpha: NodeWorld) -> None:
    from tests.discovery.test_node_ingest import batch, device

    run = node_run(alpha)
    from discovery.node import batch_handle

    batch_handle(alpha.node.pk, batch(run, [device()]))
    found = DiscoveredDevice.unscoped.get()
    bravo = make_world("bravo")
    outsider = api_client_for(bravo.users["owner"])
    assert outsider.get(f"{RUNS}{run.pk}/").status_code == 404
    assert outsider.get(f"{DEVICES}{found.pk}/").status_code == 404
    assert outsider.get(f"{DEVICES}?run={run.pk}").json()["results"] == []
    response = outsider.post(f"{DEVICES}pair/", {"devices": [found.pk]}, format="json")
    assert response.status_code == 400 and not Miner.unscoped.exists()
    mine = api_client_for(alpha.world.users["operator"]).get(f"{DEVICES}?run={run.pk}")
    rows = mine.json()["results"]
    assert [r["host"] for r in rows] == ["127.0.5.3"] and rows[0]["node"] == alpha.node.pk
    assert api_client_for(alpha.admin).get(f"{DEVICES}?run=abc").status_code == 400


def test_pair_through_the_api_is_a_job(alpha: NodeWorld) -> None:
    from discovery.node import batch_handle
    from tests.discovery.test_node_ingest import batch, device

    run = node_run(alpha)
    batch_handle(alpha.node.pk, batch(run, [device(), device("127.0.5.4")]))
    ids = list(DiscoveredDevice.unscoped.values_list("id", flat=True))
    client = api_client_for(alpha.admin)
    response = client.post(
        f"{DEVICES}pair/", {"devices": ids, "node": alpha.node.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == pairing.JOB_KIND and job["total"] == 2
    pairing.pairing_execute(job["id"])  # what the worker runs after commit
    body = client.get(f"/api/v1/jobs/{job['id']}/").json()
    assert (body["status"], body["done"], body["failed"]) == ("done", 2, 0)
    miners = Miner.unscoped.filter(node=alpha.node)
    assert miners.count() == 2 and all(m.managed_by == alpha.node.managed_by for m in miners)
    # node-found devices are refused to cloud pairing, with the reason
    again = pairing.device_pair(actor=Actor.for_user(alpha.admin), device_id=ids[0], node=None)
    assert again[0] == pairing.FAILED


@pytest.mark.django_db(transaction=True)
def test_concurrent_pairings_of_one_device_have_one_winner(allow_loopback: None) -> None:
    world = make_world("alpha")
    nw = NodeWorld(world, confirmed_node(world))
    from discovery.node import batch_handle
    from tests.discovery.test_node_ingest import batch, device

    run = node_run(nw)
    batch_handle(nw.node.pk, batch(run, [device(serial="RACE-1")]))
    found = DiscoveredDevice.unscoped.get()
    barrier = threading.Barrier(4)
    results: list[str] = []

    def attempt(node: bool) -> None:
        try:
            barrier.wait()
            outcome = pairing.device_pair(
                actor=Actor.for_user(nw.admin),
                device_id=found.pk,
                node=nw.node if node else None,
            )
            results.append(outcome[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["failed", "failed", "failed", "paired"]
    assert Miner.unscoped.count() == 1
    assert DiscoveredDevice.unscoped.get().miner_id == Miner.unscoped.get().pk
