"""Miner actions, single and bulk, reaching simulated rigs; permissions at the miner's site."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.models import ActivityEvent
from fleet.models import Job, JobItem, Miner
from fleet.services.jobs import job_execute
from fleet.services.miners import miner_add
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.conftest import PASSWORD, ThreadedFleet

pytestmark = pytest.mark.usefixtures("loopback_allowed")


@pytest.fixture
def fleet(org_a: OrgWorld, rigs: ThreadedFleet) -> Iterator[list[Miner]]:
    actor = Actor.system("tests")
    yield [
        miner_add(actor=actor, site=org_a.sites[0], host=e["host"], password=PASSWORD)
        for e in rigs.inventory
    ]


def sim(rigs: ThreadedFleet, miner: Miner) -> Any:
    return rigs.fleet.miner(miner.host)


def act(client: Any, miner: Miner, kind: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/api/v1/miners/{miner.pk}/actions/{kind}/", body or {}, format="json")


def run(job_id: int) -> Job:
    job_execute(job_id)
    return Job.unscoped.get(pk=job_id)


def test_blink_reaches_the_rig_and_is_audited(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    proto = next(m for m in fleet if m.driver == "protoos")
    response = act(api_client_for(org_a.users["field_tech"]), proto, "blink", {"seconds": 60})
    assert response.status_code == 202, response.content
    job = run(response.json()["job"]["id"])
    assert (job.status, job.done, job.failed) == ("done", 1, 0)
    assert sim(rigs, proto).locate_on(time.time())
    event = ActivityEvent.unscoped.get(verb="miner.blink", target_id=str(proto.pk))
    assert event.result == "ok" and event.actor_user_id == org_a.users["field_tech"].pk


def test_permissions_are_per_action(org_a: OrgWorld, fleet: list[Miner]) -> None:
    tech = api_client_for(org_a.users["field_tech"])
    assert act(tech, fleet[0], "reboot").status_code == 403
    assert act(api_client_for(org_a.users["viewer"]), fleet[0], "blink").status_code == 403
    denied = ActivityEvent.unscoped.filter(result="denied", target_id=str(fleet[0].pk))
    assert sorted(denied.values_list("verb", flat=True)) == ["miner.blink", "miner.reboot"]


def test_a_missing_capability_is_a_400_with_the_reason(org_a: OrgWorld, fleet: list[Miner]) -> None:
    antminer = next(m for m in fleet if m.driver == "antminer")
    response = act(
        api_client_for(org_a.users["owner"]), antminer, "set_power_target", {"watts": 3000}
    )
    assert response.status_code == 400 and "power_target_watts" in str(response.json())


def test_bad_parameters_are_field_errors(org_a: OrgWorld, fleet: list[Miner]) -> None:
    owner = api_client_for(org_a.users["owner"])
    bad_url = act(owner, fleet[0], "set_pools", {"pools": [{"url": "http://evil", "user": "w"}]})
    assert bad_url.status_code == 400 and "pools.0.url" in bad_url.json()
    four = {"pools": [{"url": "stratum+tcp://p:3333", "user": "w"}] * 4}
    assert act(owner, fleet[0], "set_pools", four).status_code == 400
    assert act(owner, fleet[0], "set_power_target", {}).status_code == 400
    assert act(owner, fleet[0], "blink", {"seconds": "lots"}).status_code == 400


def test_set_pools_renders_worker_templates(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    proto = next(m for m in fleet if m.driver == "protoos")
    body = {
        "pools": [
            {
                "url": "stratum+tcp://pool.example:3333",
                "user": "acct.{site}-{name}",
                "password": "x",
            }
        ]
    }
    response = act(api_client_for(org_a.users["owner"]), proto, "set_pools", body)
    assert response.status_code == 202
    assert response.json()["job"]["params"]["pools"][0]["password"] == "***"
    job = run(response.json()["job"]["id"])
    assert job.done == 1, JobItem.objects.filter(job=job).values_list("error", flat=True)
    pools = sim(rigs, proto).pools
    assert pools[0].user == f"acct.{org_a.sites[0].slug}-{proto.name.replace(' ', '-')}"


def test_bulk_by_filter_is_staggered_and_reports_each_miner(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    owner = api_client_for(org_a.users["owner"])
    response = owner.post(
        "/api/v1/jobs/",
        {
            "kind": "blink",
            "params": {"on": True, "seconds": 30},
            "filter": {"site": org_a.sites[0].pk},
            "batch_size": 1,
            "interval_s": 0.2,
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    started = time.monotonic()
    job = run(response.json()["id"])
    assert time.monotonic() - started >= 0.4  # three batches, two pauses
    assert (job.total, job.done, job.failed, job.status) == (3, 3, 0, "done")
    detail = owner.get(f"/api/v1/jobs/{job.pk}/").json()
    assert sorted(i["status"] for i in detail["items"]) == ["ok", "ok", "ok"]
    assert all(sim(rigs, m).locate_on(time.time()) for m in fleet)
    assert ActivityEvent.unscoped.filter(verb="miner.blink", result="ok").count() == 3


def test_bulk_skips_miners_without_the_capability(org_a: OrgWorld, fleet: list[Miner]) -> None:
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/jobs/",
        {
            "kind": "set_power_target",
            "params": {"watts": 3200},
            "miners": [m.pk for m in fleet],
            "interval_s": 0,
        },
        format="json",
    )
    assert response.status_code == 202
    job = run(response.json()["id"])
    items = {i.miner.driver: i for i in JobItem.objects.filter(job=job).select_related("miner")}
    assert items["antminer"].status == "skipped" and "power_target_watts" in items["antminer"].error
    assert job.done == 2 and job.failed == 1


def test_cancel_before_it_runs(org_a: OrgWorld, fleet: list[Miner]) -> None:
    owner = api_client_for(org_a.users["owner"])
    job_id = owner.post(
        "/api/v1/jobs/", {"kind": "reboot", "miners": [fleet[0].pk]}, format="json"
    ).json()["id"]
    cancelled = owner.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    job = run(job_id)
    assert job.status == "cancelled" and job.done == 0
    assert JobItem.objects.get(job=job).status == "cancelled"


def test_jobs_are_org_scoped(org_a: OrgWorld, org_b: OrgWorld, fleet: list[Miner]) -> None:
    job_id = (
        api_client_for(org_a.users["owner"])
        .post("/api/v1/jobs/", {"kind": "blink", "miners": [fleet[0].pk]}, format="json")
        .json()["id"]
    )
    outsider = api_client_for(org_b.users["owner"])
    assert outsider.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert outsider.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert outsider.get("/api/v1/jobs/").json()["count"] == 0
    response = outsider.post(
        "/api/v1/jobs/", {"kind": "blink", "miners": [fleet[0].pk]}, format="json"
    )
    assert response.status_code == 400 and "miners" in response.json()


def test_a_power_target_shows_as_not_applied_until_a_poll_confirms_it(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    from fleet.services import polling

    proto = next(m for m in fleet if m.driver == "protoos")
    owner = api_client_for(org_a.users["owner"])
    response = act(owner, proto, "set_power_target", {"watts": 3100})
    assert run(response.json()["job"]["id"]).done == 1
    assert owner.get(f"/api/v1/miners/{proto.pk}/").json()["requested_power_target_w"] == 3100
    assert sim(rigs, proto).power_target_w == 3100
    polling.poll_shard([proto.pk])  # the rig reports it: the request is confirmed and cleared
    body = owner.get(f"/api/v1/miners/{proto.pk}/").json()
    assert body["requested_power_target_w"] is None
    assert body["latest"]["power_target_w"] == 3100


def test_target_taken_needs_the_rig_to_report_it() -> None:
    from fleet.services.telemetry import target_taken

    assert target_taken(3000, 3000.0) and target_taken(3000, 2980.0)
    assert not target_taken(3000, 3300.0) and not target_taken(3000, None)
    assert not target_taken(None, 3000.0)
