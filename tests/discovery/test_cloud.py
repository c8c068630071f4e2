"""Cloud runs end to end against simulated miners on 127.x, and pairing what they found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Role, SiteRoleAssignment
from discovery import cloud, pairing, services
from discovery.models import DiscoveredDevice, DiscoveryRun, Outcome, RunStatus
from fleet.models import Job, JobStatus, Miner
from miners.scan import Found
from tests.conftest import OrgWorld, make_user
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.miners.conftest import PORT_OFFSET

pytestmark = pytest.mark.usefixtures("allow_loopback")


@pytest.fixture(scope="module")
def sims() -> Iterator[ThreadedFleet]:
    fleet = ThreadedFleet(
        proto=2, antminer=1, password=PASSWORD, port_offset=PORT_OFFSET, stats_delay=0.0, seed=5
    )
    yield fleet
    fleet.stop()


def block(sims: ThreadedFleet) -> str:
    first = sims.inventory[0]["host"]
    return first.rsplit(".", 1)[0] + ".1-40"


def cloud_run(world: OrgWorld, sims: ThreadedFleet, user: str = "operator") -> DiscoveryRun:
    ports = sorted({p for e in sims.inventory for p in e["ports"].values()})
    run = services.run_create(
        actor=Actor.for_user(world.users[user]),
        site=world.sites[0],
        target_list=[block(sims)],
        ports=ports,
    )
    result = cloud.run_in_cloud(run)
    assert result is not None
    return result


def test_a_cloud_run_finds_exactly_the_simulated_miners(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    run = cloud_run(org_a, sims)
    assert (run.status, run.outcome) == (RunStatus.DONE, Outcome.OK), run.error
    assert run.probed == run.total == 40 * len(run.ports)
    found = {d.host: d for d in DiscoveredDevice.unscoped.filter(run=run)}
    assert set(found) == {e["host"] for e in sims.inventory}
    for entry in sims.inventory:
        row = found[entry["host"]]
        assert row.node_id is None
        if entry["kind"] == "protoos":
            assert row.identifier == f"mac:{entry['mac'].lower()}"
            assert row.serial == entry["serial"] and row.driver == "protoos"
        else:  # stock Antminer firmware shows its MAC only after a login: one auto: row
            assert row.identifier.startswith("auto:") and row.driver == "antminer"
    assert (run.found, run.new, run.updated) == (3, 3, 0)
    # a rescan updates the same rows
    again = cloud_run(org_a, sims)
    assert (again.found, again.new, again.updated) == (3, 0, 3)
    assert DiscoveredDevice.unscoped.count() == 3


def test_a_retried_ingest_never_double_counts(org_a: OrgWorld) -> None:
    run = services.run_create(
        actor=Actor.for_user(org_a.users["owner"]),
        site=org_a.sites[0],
        target_list=["127.0.7.1-4"],
        ports=[80],
    )
    services.run_start(run, deadline_s=60)
    item = Found("127.0.7.2", 80, "http", "protoos", "Proto", "Rig", "1", "", "SER-1")
    for _attempt in range(3):
        cloud._flush(run, [item], ["protoos", "antminer"], probed=4)
    run.refresh_from_db()
    assert (run.found, run.new, run.probed) == (1, 1, 4)


def test_pairing_outcomes_and_address_change(org_a: OrgWorld, sims: ThreadedFleet) -> None:
    run = cloud_run(org_a, sims)
    devices = {d.host: d for d in DiscoveredDevice.unscoped.filter(run=run)}
    proto = [e for e in sims.inventory if e["kind"] == "protoos"]
    actor = Actor.for_user(org_a.users["operator"])
    # the first rig is already a miner at an old address: pairing moves it, no duplicate
    old = Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier=devices[proto[0]["host"]].identifier,
        name="moved rig",
        host="127.0.7.99",
        port=80,
        driver="protoos",
    )
    moved = pairing.device_pair(
        actor=actor, device_id=devices[proto[0]["host"]].pk, node=None, password=PASSWORD
    )
    assert moved[0] == pairing.PAIRED and moved[2] is not None and moved[2].pk == old.pk
    old.refresh_from_db()
    assert old.host == proto[0]["host"] and Miner.unscoped.count() == 1
    wrong = pairing.device_pair(
        actor=actor, device_id=devices[proto[1]["host"]].pk, node=None, password="wrong-pass-1"
    )
    assert wrong[0] == pairing.AUTH_NEEDED
    job = pairing.pairing_create(
        actor=actor,
        org=org_a.org,
        devices=[devices[proto[1]["host"]]],
        password=PASSWORD,
    )
    pairing.pairing_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == (JobStatus.DONE, 1, 0)
    device = DiscoveredDevice.unscoped.get(pk=devices[proto[1]["host"]].pk)
    assert device.miner is not None and device.pair_outcome == pairing.PAIRED
    again = pairing.device_pair(actor=actor, device_id=device.pk, node=None, password=PASSWORD)
    assert again[0] == pairing.FAILED and "Already paired" in again[1]
    assert Miner.unscoped.count() == 2
    assert Job.unscoped.get(pk=job.pk).kind == pairing.JOB_KIND


def test_a_viewer_cannot_start_a_run(org_a: OrgWorld) -> None:
    from accounts.errors import Forbidden

    with pytest.raises(Forbidden):
        services.run_create(
            actor=Actor.for_user(org_a.users["viewer"]),
            site=org_a.sites[0],
            target_list=["127.0.0.1"],
        )


def test_a_pairing_jobs_failed_devices_show_on_its_page_and_in_the_api(
    org_a: OrgWorld, org_b: OrgWorld, sims: ThreadedFleet
) -> None:
    """A device that failed to pair has no miner; its result is still the job's, shown to
    those who may read miners at the device's site, and to nobody else."""
    run = cloud_run(org_a, sims)
    devices = sorted(DiscoveredDevice.unscoped.filter(run=run), key=lambda d: d.host)
    proto = next(d for d in devices if d.driver == "protoos")
    actor = Actor.for_user(org_a.users["operator"])
    job = pairing.pairing_create(
        actor=actor, org=org_a.org, devices=[proto], password="wrong-pass-1"
    )
    pairing.pairing_execute(job.pk)
    job.refresh_from_db()
    assert (job.done, job.failed) == (0, 1)
    label = f"{proto.driver} {proto.host}:{proto.port}"

    def shown(user: Any) -> tuple[int, bool, list[str]]:
        client = Client()
        client.force_login(user)
        page = client.get(reverse("job-page", args=[job.pk]))
        api = client.get(f"/api/v1/jobs/{job.pk}/", HTTP_ACCEPT="application/json")
        names = [i["miner_name"] for i in api.json()["items"]] if api.status_code == 200 else []
        return page.status_code, label in page.content.decode(), names

    assert shown(org_a.users["viewer"]) == (200, True, [label])
    # no miner:read at the device's site (a site role narrower than the org's viewer role)
    blind = make_user("blind@alpha.example", org_a.org, "viewer")
    nothing = Role.unscoped.create(org=org_a.org, slug="nothing", name="Nothing", permissions=[])
    SiteRoleAssignment.unscoped.create(user=blind, site=proto.site, role=nothing)
    status, seen, names = shown(blind)
    assert (seen, names) == (False, [])
    # another org's member: the job is not there at all
    assert shown(org_b.users["owner"])[0] == 404


def test_a_device_whose_miner_was_deleted_loses_its_old_pairing_reason(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    first = cloud_run(org_a, sims)
    proto = next(d for d in DiscoveredDevice.unscoped.filter(run=first) if d.driver == "protoos")
    actor = Actor.for_user(org_a.users["operator"])
    job = pairing.pairing_create(actor=actor, org=org_a.org, devices=[proto], password=PASSWORD)
    pairing.pairing_execute(job.pk)
    proto.refresh_from_db()
    assert proto.miner is not None and proto.pair_outcome == pairing.PAIRED
    Miner.unscoped.filter(pk=proto.miner.pk).delete()

    again = cloud_run(org_a, sims)
    proto.refresh_from_db()
    assert proto.miner is None and (proto.pair_outcome, proto.pair_error) == ("", "")
    assert DiscoveredDevice.unscoped.filter(run=again, miner__isnull=True).count() >= 1

    # "Pair all new" when nothing is new says so, and starts no job
    for device in DiscoveredDevice.unscoped.filter(run=again, miner__isnull=True):
        pairing.pairing_execute(
            pairing.pairing_create(
                actor=actor, org=org_a.org, devices=[device], password=PASSWORD
            ).pk
        )
    client = Client()
    client.force_login(org_a.users["operator"])
    jobs = Job.unscoped.count()
    reply = client.post(reverse("discovery-pair"), {"run": again.pk, "all_new": "1"}, follow=True)
    assert "No new devices in this run to pair" in reply.content.decode()
    assert Job.unscoped.count() == jobs


def test_an_older_run_points_to_the_later_run_that_took_its_devices(
    org_a: OrgWorld, sims: ThreadedFleet
) -> None:
    first = cloud_run(org_a, sims)
    later = cloud_run(org_a, sims)
    client = Client()
    client.force_login(org_a.users["operator"])
    page = client.get(reverse("discovery"), {"run": first.pk}).content.decode()
    assert "seen again by a later run" in page and f"?run={later.pk}" in page
    assert (
        "seen again by a later run"
        not in client.get(reverse("discovery"), {"run": later.pk}).content.decode()
    )
