"""/discovery/: guarded like the fleet pages, scoped to the caller's org, bad input a message."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from discovery.models import DiscoveryRun, SavedRange
from tests.conftest import OrgWorld

pytestmark = pytest.mark.usefixtures("allow_loopback")


def client_for(world: OrgWorld, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def test_the_page_and_its_empty_state(org_a: OrgWorld) -> None:
    response = client_for(org_a, "operator").get("/discovery/")
    assert response.status_code == 200
    assert (
        b"No discovery runs yet" in response.content and b"No saved ranges yet" in response.content
    )
    assert client_for(org_a, "viewer").get("/discovery/").status_code == 403


def test_start_and_see_the_run(org_a: OrgWorld) -> None:
    client = client_for(org_a, "operator")
    response = client.post(
        "/discovery/start/",
        {"site": org_a.sites[0].pk, "targets": "127.0.9.1-3, 127.0.9.9", "ports": "80 4028"},
    )
    run = DiscoveryRun.unscoped.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    assert run.addresses == ["127.0.9.1", "127.0.9.2", "127.0.9.3", "127.0.9.9"]
    page = client.get(response["Location"])
    assert f'data-discovery-run="{run.pk}"'.encode() in page.content


@pytest.mark.parametrize(
    "form",
    [
        {"targets": "8.8.8.8"},
        {"targets": "10.0.0.0/8"},
        {"targets": "127.0.0.1", "ports": "http"},
        {"targets": "127.0.0.1", "ports": "70000"},
        {"targets": ""},
        {"targets": "127.0.0.1", "site": "x"},
        {"targets": "127.0.0.1", "site": "99999999999999999999999"},
    ],
)
def test_bad_input_is_a_message(org_a: OrgWorld, form: dict[str, str]) -> None:
    response = client_for(org_a, "operator").post(
        "/discovery/start/", {"site": str(org_a.sites[0].pk), **form}, follow=True
    )
    assert response.status_code == 200
    assert list(response.context["messages"])
    assert not DiscoveryRun.unscoped.exists()


def test_another_orgs_site_run_and_schedule_are_not_reachable(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    client = client_for(org_a, "owner")
    response = client.post("/discovery/start/", {"site": org_b.sites[0].pk, "targets": "127.0.0.1"})
    assert response.status_code == 404 and not DiscoveryRun.unscoped.exists()
    theirs = DiscoveryRun.unscoped.create(org=org_b.org, site=org_b.sites[0], actor_label="b")
    page = client.get(f"/discovery/?run={theirs.pk}")
    assert f'data-discovery-run="{theirs.pk}"'.encode() not in page.content
    saved = SavedRange.unscoped.create(org=org_b.org, site=org_b.sites[0], name="theirs")
    assert client.post(f"/discovery/schedules/{saved.pk}/delete/").status_code == 404
    assert SavedRange.unscoped.filter(pk=saved.pk).exists()


def test_save_and_remove_a_schedule(org_a: OrgWorld) -> None:
    client = client_for(org_a, "operator")
    form = {"site": org_a.sites[0].pk, "name": "rack A", "targets": "127.0.9.0/28"}
    client.post("/discovery/schedules/", {**form, "interval_minutes": "15"})
    saved = SavedRange.unscoped.get()
    assert saved.interval_minutes == 15
    assert b"rack A" in client.get("/discovery/").content
    client.post(f"/discovery/schedules/{saved.pk}/delete/")
    assert not SavedRange.unscoped.exists()
    client.post("/discovery/schedules/", {**form, "interval_minutes": "1"})
    assert not SavedRange.unscoped.exists()


def test_pairing_outcomes_show_on_the_run_and_the_job_links_back(org_a: OrgWorld) -> None:
    """A device that could not be paired has no miner, so the job page (which lists miners)
    can't show it: its outcome is in the run's devices table, and the job links to the run."""
    from discovery import pairing
    from discovery.models import DiscoveredDevice
    from fleet.models import Job

    client = client_for(org_a, "owner")
    run = DiscoveryRun.unscoped.create(
        org=org_a.org, site=org_a.sites[0], actor_label="a", status="done", outcome="ok", found=2
    )
    common = {"org": org_a.org, "site": org_a.sites[0], "run": run, "port": 80}
    refused = DiscoveredDevice.unscoped.create(
        identifier="mac:aa:00:00:00:00:01",
        host="127.0.9.1",
        driver="protoos",
        pair_outcome=pairing.AUTH_NEEDED,
        pair_error="The rig refused the password.",
        **common,
    )
    fresh = DiscoveredDevice.unscoped.create(
        identifier="mac:aa:00:00:00:00:02", host="127.0.9.2", driver="antminer", **common
    )
    page = client.get(f"/discovery/?run={run.pk}").content.decode()
    assert f'data-history-run="{run.pk}"' in page and 'data-history-field="status"' in page
    assert "Needs credentials" in page and "The rig refused the password." in page
    assert f'value="{refused.pk}"' in page and f'value="{fresh.pk}"' in page  # both selectable

    response = client.post("/discovery/pair/", {"run": run.pk, "device": [fresh.pk]})
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    job = Job.unscoped.get(kind=pairing.JOB_KIND)
    assert job.params["run"] == run.pk and job.params["devices"] == [fresh.pk]
    page = client.get(response["Location"]).content.decode()
    assert f'href="/jobs/{job.pk}/"' in page
    job_page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/discovery/?run={run.pk}"' in job_page and "data-job-run" in job_page


def test_another_orgs_pairing_job_is_not_listed_on_my_run(org_a: OrgWorld, org_b: OrgWorld) -> None:
    from discovery import pairing
    from fleet.models import Job

    mine = DiscoveryRun.unscoped.create(org=org_a.org, site=org_a.sites[0], actor_label="a")
    theirs = Job.unscoped.create(
        org=org_b.org, kind=pairing.JOB_KIND, params={"run": mine.pk}, actor_label="b", total=1
    )
    page = client_for(org_a, "owner").get(f"/discovery/?run={mine.pk}").content.decode()
    assert f"/jobs/{theirs.pk}/" not in page


def test_a_bad_or_missing_run_is_a_clear_message_and_another_orgs_is_missing(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    client = client_for(org_a, "operator")
    mine = DiscoveryRun.unscoped.create(org=org_a.org, site=org_a.sites[0], actor_label="a")
    theirs = DiscoveryRun.unscoped.create(org=org_b.org, site=org_b.sites[0], actor_label="b")
    missing = theirs.pk + 1000

    def shown(value: str) -> tuple[int, list[str], bool]:
        response = client.get("/discovery/", {"run": value})
        text = [str(m).replace(value, "N") for m in response.context["messages"]]
        return response.status_code, text, b"data-discovery-run=" in response.content

    assert shown(str(mine.pk))[0::2] == (200, True)
    gone = (404, ["There is no run N here: it doesn't exist, or it belongs to a site or an "
                  "organization you can't see."], False)  # fmt: skip
    assert shown(str(missing)) == gone
    assert shown(str(theirs.pk)) == gone  # exactly like a missing one
    assert shown("abc") == (400, ["'N' is not a run number."], False)
    assert shown("1" * 30)[0] == 400
    page = client.get("/discovery/", {"run": "abc"})
    assert (
        b"Start discovery" in page.content
        and b"&#x27;abc&#x27; is not a run number." in page.content
    )


def test_a_runs_devices_are_listed_by_address_in_numeric_order(org_a: OrgWorld) -> None:
    from discovery.models import DiscoveredDevice

    run = DiscoveryRun.unscoped.create(org=org_a.org, site=org_a.sites[0], actor_label="a")
    hosts = ["127.0.9.10", "fd00::2", "127.0.9.2", "127.0.9.1", "127.0.9.11", "fd00::10"]
    for n, host in enumerate(hosts):
        DiscoveredDevice.unscoped.create(
            org=org_a.org,
            site=org_a.sites[0],
            run=run,
            identifier=f"serial:S{n}",
            host=host,
            port=80,
            driver="protoos",
        )
    page = client_for(org_a, "operator").get(f"/discovery/?run={run.pk}").content.decode()
    listed = re.findall(r"<td[^>]*>([0-9a-f.:]+):80</td>", page)  # the address cells
    assert listed == ["127.0.9.1", "127.0.9.2", "127.0.9.10", "127.0.9.11", "fd00::2", "fd00::10"]
