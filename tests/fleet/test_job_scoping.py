"""Jobs are scoped by their items' sites (``Job.scope_filter``), once, for the API, the pages,
cancel, live events and the activity log: two orgs, a member whose site role hides site A2,
and a member whose only role is at site A1. Also: a cancel during the wait between batches
stops the next batch, pairing jobs can be cancelled, ``/cancel`` without the slash, filters."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from accounts.actor import Actor
from accounts.models import Membership, Role, SiteRoleAssignment, User
from discovery import pairing
from discovery.models import DiscoveredDevice, DiscoveryRun, RunStatus
from fleet.models import ItemStatus, Job, JobItem, JobStatus, Miner
from fleet.services import jobs as job_service
from fleet.services.jobs import job_cancel, job_create, job_execute, job_finish
from tests.accounts.pages.support import html, signed_in
from tests.conftest import OrgWorld, api_client_for, make_user

SYSTEM = Actor.system("tests")
POOLS = {"pools": [{"url": "stratum+tcp://a2-pool.example:3333", "user": "a2secret.{name}"}]}
_HOSTS = itertools.count(1)
ALL_CAPS = ["reboot", "blink", "pools", "power_target_watts", "start_mining", "stop_mining"]


@dataclass
class World:
    org: OrgWorld
    a1: Miner
    a2: Miner
    only_a1: Job  # blink at A1
    only_a2: Job  # set_pools at A2
    both: Job  # set_pools at A1 and A2
    hidden: User  # org operator, no permission at A2
    site_only: User  # no org permission, operator at A1


def _miner(org: OrgWorld, site: int, name: str) -> Miner:
    return Miner.unscoped.create(
        org=org.org,
        site=org.sites[site],
        identifier=f"serial:{org.org.slug}-{name}",
        name=name,
        host=f"10.9.{site}.{next(_HOSTS)}",
        port=80,
        driver="antminer",
        capabilities=ALL_CAPS,
    )


def _world(org: OrgWorld) -> World:
    a1, a2 = _miner(org, 0, "rig-a1"), _miner(org, 1, "rig-a2")
    big = {"interval_s": 3600}

    def make(kind: str, params: dict[str, Any], miners: list[Miner]) -> Job:
        return job_create(actor=SYSTEM, org=org.org, kind=kind, params=params, miners=miners, **big)

    only_a1 = make("blink", {}, [a1])
    only_a2 = make("set_pools", POOLS, [a2])
    both = make("set_pools", POOLS, [a1, a2])
    nothing = Role.unscoped.create(org=org.org, slug="nothing", name="Nothing", permissions=[])
    operator = Role.unscoped.get(slug="operator", org__isnull=True)
    hidden = make_user("hidden@alpha.example", org.org, "operator")
    SiteRoleAssignment.unscoped.create(user=hidden, site=org.sites[1], role=nothing)
    site_only = make_user("siteonly@alpha.example")
    Membership.unscoped.create(user=site_only, org=org.org, role=nothing)
    SiteRoleAssignment.unscoped.create(user=site_only, site=org.sites[0], role=operator)
    return World(org, a1, a2, only_a1, only_a2, both, hidden, site_only)


@pytest.fixture
def world(org_a: OrgWorld, org_b: OrgWorld) -> World:
    return _world(org_a)


def _listed(user: User, query: str = "") -> list[int]:
    response = api_client_for(user).get(f"/api/v1/jobs/{query}")
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()["results"]]


# --- list, detail, params --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_follows_site_roles_and_orgs(world: World, org_b: OrgWorld) -> None:
    w = world
    everything = {w.only_a1.pk, w.only_a2.pk, w.both.pk}
    assert set(_listed(w.org.users["viewer"])) == everything
    assert set(_listed(w.hidden)) == {w.only_a1.pk, w.both.pk}
    assert set(_listed(w.site_only)) == {w.only_a1.pk, w.both.pk}
    assert _listed(org_b.users["owner"]) == []
    counted = api_client_for(w.hidden).get("/api/v1/jobs/").json()["count"]
    assert counted == 2


@pytest.mark.django_db
def test_a_hidden_sites_job_is_404_and_params_need_every_site(
    world: World, org_b: OrgWorld
) -> None:
    w = world
    for user in (w.hidden, org_b.users["owner"]):
        client = api_client_for(user)
        assert client.get(f"/api/v1/jobs/{w.only_a2.pk}/").status_code == 404
        assert client.post(f"/api/v1/jobs/{w.only_a2.pk}/cancel/").status_code == 404
    body = api_client_for(w.hidden).get(f"/api/v1/jobs/{w.both.pk}/").json()
    assert body["params"] is None  # pool URLs/users of a site they can't see
    assert [i["miner"] for i in body["items"]] == [w.a1.pk]
    listed = api_client_for(w.hidden).get("/api/v1/jobs/").json()["results"]
    assert {j["id"]: j["params"] for j in listed}[w.both.pk] is None
    assert "a2-pool" not in str(listed)
    full = api_client_for(w.org.users["viewer"]).get(f"/api/v1/jobs/{w.both.pk}/").json()
    assert full["params"]["pools"][0]["url"].startswith("stratum+tcp://a2-pool")
    assert len(full["items"]) == 2


@pytest.mark.django_db
def test_a_site_only_member_sees_their_own_job(world: World) -> None:
    w = world
    client = api_client_for(w.site_only)
    started = client.post(f"/api/v1/miners/{w.a1.pk}/actions/blink/", {}, format="json")
    assert started.status_code == 202, started.content
    job_id = started.json()["job"]["id"]
    detail = client.get(f"/api/v1/jobs/{job_id}/")
    assert detail.status_code == 200
    assert [i["miner"] for i in detail.json()["items"]] == [w.a1.pk]
    assert detail.json()["params"] == {"on": True, "seconds": None}
    assert job_id in _listed(w.site_only)
    assert client.get(f"/api/v1/jobs/{w.only_a2.pk}/").status_code == 404
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_pages_follow_the_same_scope(world: World, org_b: OrgWorld) -> None:
    w = world
    hidden = signed_in(w.hidden)
    assert hidden.get(f"/jobs/{w.only_a2.pk}/").status_code == 404
    assert hidden.post(f"/jobs/{w.only_a2.pk}/cancel/").status_code == 404
    assert signed_in(org_b.users["owner"]).get(f"/jobs/{w.only_a1.pk}/").status_code == 404
    page = html(hidden.get(f"/jobs/{w.both.pk}/"))
    assert "a2-pool" not in page and "a2secret" not in page and "rig-a2" not in page
    listing = html(hidden.get("/jobs/"))
    assert f'data-job="{w.only_a2.pk}"' not in listing
    assert f'data-job="{w.both.pk}"' in listing
    viewer_page = html(signed_in(w.org.users["viewer"]).get(f"/jobs/{w.both.pk}/"))
    assert "a2-pool" in viewer_page
    site_only = signed_in(w.site_only)
    response = site_only.post(f"/miners/{w.a1.pk}/actions/blink/", {"on": "on"})
    job = Job.unscoped.order_by("-pk").first()
    assert job is not None and job.created_by_id == w.site_only.pk
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    detail = site_only.get(f"/jobs/{job.pk}/")
    assert detail.status_code == 200
    assert "Cancel job" in html(detail)
    assert f'data-job="{job.pk}"' in html(site_only.get("/jobs/"))


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_needs_the_permission_at_every_remaining_site(world: World) -> None:
    w = world
    operator_a1_only = make_user("a1op@alpha.example", w.org.org, "viewer")
    SiteRoleAssignment.unscoped.create(
        user=operator_a1_only,
        site=w.org.sites[0],
        role=Role.unscoped.get(slug="admin", org__isnull=True),
    )
    client = api_client_for(operator_a1_only)  # may set pools at A1, not at A2
    refused = client.post(f"/api/v1/jobs/{w.both.pk}/cancel/")
    assert refused.status_code == 403
    w.both.refresh_from_db()
    assert not w.both.cancel_requested and w.both.status == JobStatus.QUEUED
    page = html(signed_in(operator_a1_only).get(f"/jobs/{w.both.pk}/"))
    assert "Cancel job" not in page  # no control that would be refused
    # once A2's item is done, only A1's remains: then they may stop it
    JobItem.objects.filter(job=w.both, site=w.org.sites[1]).update(status=ItemStatus.OK)
    assert client.post(f"/api/v1/jobs/{w.both.pk}/cancel").status_code == 200
    # the site-hidden org operator may blink at A1: the A1 job is theirs to stop
    assert api_client_for(w.hidden).post(f"/api/v1/jobs/{w.only_a1.pk}/cancel").status_code == 200


@pytest.mark.django_db
def test_cancel_without_the_trailing_slash(world: World) -> None:
    owner = api_client_for(world.org.users["owner"])
    response = owner.post(f"/api/v1/jobs/{world.only_a2.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert owner.get(f"/api/v1/jobs/{world.only_a2.pk}").status_code == 200
    assert owner.get("/api/v1/jobs").status_code == 200


@pytest.mark.django_db(transaction=True)  # the cancel comes from another connection
def test_a_cancel_during_the_wait_stops_the_next_batch(
    org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    miners = [_miner(org_a, 0, f"rig-{i}") for i in range(2)]
    job = job_create(
        actor=SYSTEM,
        org=org_a.org,
        kind="reboot",
        params={},
        miners=miners,
        batch_size=1,
        interval_s=30,
    )
    batches: list[int] = []

    def batch(job: Job, action: Any, params: Any, items: list[JobItem], actor: Any) -> None:
        batches.append(len(items))
        JobItem.objects.filter(pk__in=[i.pk for i in items]).update(status=ItemStatus.OK)
        # the cancel comes from another request while the executor waits before batch two
        threading.Timer(0.2, _request_cancel, args=(job.pk,)).start()

    monkeypatch.setattr(job_service, "_run_batch", batch)
    monkeypatch.setattr(job_service, "CANCEL_POLL_S", 0.05)
    began = time.monotonic()
    job_execute(job.pk)
    assert time.monotonic() - began < 5  # the 30 s wait was cut short by the cancel
    assert batches == [1]
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    statuses = sorted(JobItem.objects.filter(job=job).values_list("status", flat=True))
    assert statuses == ["cancelled", "ok"]


def _request_cancel(job_id: int) -> None:
    try:
        Job.unscoped.filter(pk=job_id).update(cancel_requested=True)
    finally:
        connection.close()


def _pairing_job(org: OrgWorld, count: int, tag: str) -> Job:
    run = DiscoveryRun.unscoped.create(
        org=org.org, site=org.sites[0], actor_label="test", status=RunStatus.DONE
    )
    devices = [
        DiscoveredDevice.unscoped.create(
            org=org.org,
            site=org.sites[0],
            run=run,
            identifier=f"serial:pair-{tag}-{i}",
            host=f"10.8.{len(tag)}.{i + 1}",
            port=80,
            driver="antminer",
        )
        for i in range(count)
    ]
    return pairing.pairing_create(
        actor=Actor.for_user(org.users["owner"]), org=org.org, devices=devices, run=run
    )


@pytest.mark.django_db
def test_a_pairing_job_can_be_cancelled(org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    queued = _pairing_job(org_a, 2, "q")
    viewer = api_client_for(org_a.users["viewer"])
    assert viewer.post(f"/api/v1/jobs/{queued.pk}/cancel").status_code == 403  # no miner:pair
    response = api_client_for(org_a.users["owner"]).post(f"/api/v1/jobs/{queued.pk}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    pairing.pairing_execute(queued.pk)  # a cancelled job doesn't start
    assert set(JobItem.objects.filter(job=queued).values_list("status", flat=True)) == {"cancelled"}

    running = _pairing_job(org_a, 3, "run")
    paired: list[int] = []

    def pair(**kwargs: Any) -> tuple[str, str, None]:
        paired.append(kwargs["device_id"])
        job_cancel(actor=Actor.for_user(org_a.users["owner"]), job=running)  # mid-run
        return pairing.FAILED, "test", None

    monkeypatch.setattr(pairing, "device_pair", pair)
    pairing.pairing_execute(running.pk)
    running.refresh_from_db()
    assert len(paired) == 1 and running.status == JobStatus.CANCELLED
    statuses = sorted(JobItem.objects.filter(job=running).values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "failed"]


@pytest.mark.django_db
def test_a_kind_nobody_can_stop_is_a_clear_400(org_a: OrgWorld) -> None:
    job = Job.unscoped.create(org=org_a.org, kind="mystery", actor_label="x", total=0)
    response = api_client_for(org_a.users["owner"]).post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 400
    assert "kind" not in response.json() and "can't be cancelled" in str(response.json())


# --- activity --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_job_activity_is_recorded_per_site(world: World) -> None:
    w = world

    def verbs(user: User, verb: str) -> list[dict[str, Any]]:
        response = api_client_for(user).get(f"/api/v1/activity/?verb={verb}")
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.json()["results"]
        return rows

    seen = verbs(w.hidden, "job.create")
    # the A1 events of the jobs at A1 (with what was applied there), nothing of A2's
    assert sorted(e["target_id"] for e in seen) == sorted([str(w.only_a1.pk), str(w.both.pk)])
    assert all(e["site"] == w.org.sites[0].pk for e in seen)
    assert {e["details"]["miners"] for e in seen} == {1}
    everyone = verbs(w.org.users["owner"], "job.create")
    assert len(everyone) == 4  # one per site touched: A1, A2, A1+A2
    assert {e["site"] for e in everyone} == {w.org.sites[0].pk, w.org.sites[1].pk}
    assert verbs(w.site_only, "job.create") == seen
    job_cancel(actor=SYSTEM, job=w.only_a2)
    assert verbs(w.hidden, "job.cancel") == []
    assert len(verbs(w.org.users["owner"], "job.cancel")) == 1


# --- filters ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_filters(world: World, org_b: OrgWorld) -> None:
    w = world
    viewer = w.org.users["viewer"]
    a1, a2 = w.org.sites[0].pk, w.org.sites[1].pk
    assert set(_listed(viewer, f"?site={a2}")) == {w.only_a2.pk, w.both.pk}
    assert set(_listed(viewer, "?kind=set_pools")) == {w.only_a2.pk, w.both.pk}
    job_cancel(actor=SYSTEM, job=w.only_a1)
    assert _listed(viewer, "?status=cancelled") == [w.only_a1.pk]
    assert set(_listed(w.hidden, f"?site={a1}")) == {w.only_a1.pk, w.both.pk}
    client = api_client_for(w.hidden)
    for query in (f"?site={a2}", "?status=bogus", "?kind=bogus", "?site=x", "?status="):
        response = client.get(f"/api/v1/jobs/{query}")
        assert response.status_code == 400, query
        assert query[1:].split("=")[0] in response.json()
    other_site = org_b.sites[0].pk
    assert api_client_for(viewer).get(f"/api/v1/jobs/?site={other_site}").status_code == 400
    page = signed_in(viewer).get("/jobs/?kind=set_pools")
    body = html(page)
    assert page.status_code == 200 and 'name="status"' in body and 'name="kind"' in body
    assert f'data-job="{w.only_a1.pk}"' not in body and f'data-job="{w.both.pk}"' in body


# --- live events -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_live_job_events_go_to_the_jobs_sites_only(org_a: OrgWorld, org_b: OrgWorld) -> None:
    from tests.fleet.test_live import connect

    w = await sync_to_async(_world)(org_a)
    hidden, _, _ = await connect(w.hidden)
    site_only, _, _ = await connect(w.site_only)
    viewer, _, _ = await connect(org_a.users["viewer"])
    other, _, _ = await connect(org_b.users["owner"])
    await sync_to_async(job_finish)(w.only_a2.pk, JobStatus.CANCELLED)
    message = await viewer.receive_json_from(timeout=3)
    assert message["type"] == "job" and message["job"]["id"] == w.only_a2.pk
    for socket in (hidden, site_only, other):
        assert await socket.receive_nothing(timeout=0.5)
    await sync_to_async(job_finish)(w.both.pk, JobStatus.CANCELLED)
    for socket in (hidden, site_only, viewer):
        message = await socket.receive_json_from(timeout=3)
        assert message["job"]["id"] == w.both.pk
        assert await socket.receive_nothing(timeout=0.5)  # once, though sent to both sites
    assert await other.receive_nothing(timeout=0.5)
    for socket in (hidden, site_only, viewer, other):
        await socket.disconnect()
