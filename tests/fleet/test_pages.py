"""The fleet pages: every built-in role, two orgs, the list at size, actions as jobs."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import ActivityEvent
from fleet.models import Job, Miner, MinerHealth, MinerLatest, SampleRollup
from fleet.selectors import fleet_series, worst_performers
from fleet.services import polling
from fleet.services.jobs import job_create, job_execute
from fleet.services.miners import miner_add
from tests.accounts.pages.support import HTMX, assert_csp_clean, html, signed_in
from tests.conftest import ROLES, OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.fleet.support import make_miners

pytestmark = pytest.mark.usefixtures("loopback_allowed")
SYSTEM = Actor.system("tests")


@pytest.fixture
def fleet(org_a: OrgWorld, rigs: ThreadedFleet) -> Iterator[list[Miner]]:
    """The simulated rigs in org A (two at site 1, one at site 2), polled once."""
    miners = [
        miner_add(
            actor=SYSTEM, site=org_a.sites[0 if i < 2 else 1], host=e["host"], password=PASSWORD
        )
        for i, e in enumerate(rigs.inventory)
    ]
    polling.poll_shard([m.pk for m in miners])
    yield miners


@pytest.fixture
def job(org_a: OrgWorld, fleet: list[Miner]) -> Job:
    return job_create(actor=SYSTEM, org=org_a.org, kind="blink", params={}, miners=fleet)


def bulk(client: Any, kind: str, *, follow: bool = False, **data: Any) -> Any:
    return client.post("/miners/actions/", {"kind": kind, **data}, follow=follow)


# --- every role, every page ------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_pages_render_for_every_role(
    role: str, org_a: OrgWorld, fleet: list[Miner], job: Job
) -> None:
    client = signed_in(org_a.users[role])
    pages = {}
    for url in ("/fleet/", "/miners/", f"/miners/{fleet[0].pk}/", f"/jobs/{job.pk}/"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_csp_clean(response)
        pages[url] = html(response)
    listing, detail = pages["/miners/"], pages[f"/miners/{fleet[0].pk}/"]
    home = html(client.get("/"))  # the accounts dashboard links to the fleet's pages
    assert 'href="/fleet/">Fleet dashboard</a>' in home and 'href="/miners/">Miners</a>' in home
    assert fleet[0].name in listing and fleet[0].host in listing
    assert 'href="/fleet/"' in listing and 'href="/miners/"' in listing  # the nav
    offered = set(re.findall(r'name="kind" value="(\w+)"', listing))
    single = set(re.findall(rf"/miners/{fleet[0].pk}/actions/(\w+)/", detail))
    expected = {
        "viewer": set(),
        "field_tech": {"blink"},
        "operator": {
            "blink",
            "reboot",
            "start_mining",
            "stop_mining",
            "set_power_target",
            "set_pools",
            "set_cooling",
        },
    }
    everything = expected["operator"]
    assert offered == expected.get(role, everything)
    assert single == expected.get(role, everything)
    if role == "viewer":
        assert 'id="bulk-form"' not in listing and 'type="checkbox" name="miners"' not in listing
        assert (
            "Add miner" not in listing and "/edit/" not in detail and "Delete miner" not in detail
        )
        assert "Cancel job" not in pages[f"/jobs/{job.pk}/"]
    assert ("Delete miner" in detail) == (role in ("owner", "admin"))
    assert ("Add miner" in listing) == (role in ("owner", "admin", "operator"))
    assert ("Cancel job" in pages[f"/jobs/{job.pk}/"]) == (role != "viewer")


def test_a_page_needs_its_permission(org_a: OrgWorld, fleet: list[Miner]) -> None:
    viewer = signed_in(org_a.users["viewer"])
    assert (
        viewer.post("/miners/add/", {"site": org_a.sites[0].pk, "host": "10.0.0.9"}).status_code
        == 403
    )
    assert viewer.post(f"/miners/{fleet[0].pk}/actions/blink/").status_code == 403
    assert viewer.post(f"/miners/{fleet[0].pk}/delete/").status_code == 403
    tech = signed_in(org_a.users["field_tech"])
    assert tech.post(f"/miners/{fleet[0].pk}/actions/reboot/").status_code == 403
    assert Miner.unscoped.filter(pk=fleet[0].pk).exists() and not Job.unscoped.exists()


# --- two orgs ----------------------------------------------------------------------------------


def test_another_orgs_miner_and_job_are_404(
    org_a: OrgWorld, org_b: OrgWorld, fleet: list[Miner], job: Job
) -> None:
    intruder = signed_in(org_b.users["owner"])
    miner = fleet[0]
    for url in (f"/miners/{miner.pk}/", f"/jobs/{job.pk}/", f"/jobs/{job.pk}/?view=status"):
        assert intruder.get(url).status_code == 404, url
    for url in (
        f"/miners/{miner.pk}/edit/",
        f"/miners/{miner.pk}/move/",
        f"/miners/{miner.pk}/credentials/",
        f"/miners/{miner.pk}/delete/",
        f"/miners/{miner.pk}/actions/reboot/",
        f"/jobs/{job.pk}/cancel/",
    ):
        assert intruder.post(url, {"name": "mine now", "password": "x"}).status_code == 404, url
    listing = html(intruder.get("/miners/"))
    assert miner.name not in listing and "No miners yet" in listing
    # ids of org A's miners select nothing in org B, and "all matching" is org B's (none)
    response = bulk(intruder, "reboot", miners=[m.pk for m in fleet])
    assert response.status_code == 302 and Job.unscoped.count() == 1
    bulk(intruder, "reboot", all_matching="1")
    assert Job.unscoped.count() == 1 and Job.unscoped.get().cancel_requested is False
    assert Miner.unscoped.get(pk=miner.pk).name == miner.name
    assert "alpha" not in html(intruder.get("/fleet/")).lower()


# --- bulk actions from the list -------------------------------------------------------------


def test_bulk_blink_from_the_list_runs_as_a_job_with_a_progress_page(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    tech = signed_in(org_a.users["field_tech"])
    response = bulk(tech, "blink", **{"blink-seconds": "30", "miners": [m.pk for m in fleet]})
    assert response.status_code == 302
    job = Job.unscoped.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.total, job.params) == ("blink", 3, {"on": True, "seconds": 30})

    running = tech.get(f"/jobs/{job.pk}/", **HTMX)
    assert 'hx-trigger="every 2s"' in html(running)  # polls while queued or running
    job_execute(job.pk)
    page = tech.get(f"/jobs/{job.pk}/")
    body = html(page)
    assert "Done" in body and body.count('class="badge badge-ok">OK<') == 3
    assert 'hx-trigger="every 2s"' not in body and "Cancel job" not in body
    for miner in fleet:
        assert miner.name in body
        assert rigs.fleet.miner(miner.host).locate_on(time.time())
    assert ActivityEvent.unscoped.filter(verb="miner.blink", result="ok").count() == 3


def test_bulk_over_htmx_redirects_the_page_or_shows_the_errors(
    org_a: OrgWorld, fleet: list[Miner]
) -> None:
    owner = signed_in(org_a.users["owner"])
    bad = {"set_pools-pools.0.url": "http://evil.example", "set_pools-pools.0.user": "w"}
    response = owner.post(
        "/miners/actions/", {"kind": "set_pools", "miners": [fleet[0].pk], **bad}, **HTMX
    )
    body = html(response)
    assert response.status_code == 200 and 'id="bulk-form"' in body
    assert "stratum+tcp://" in body and '<details class="action-panel" open>' in body
    nothing = owner.post("/miners/actions/", {"kind": "reboot"}, **HTMX)
    assert "No miners selected." in html(nothing) and not Job.unscoped.exists()
    junk = {"kind": "reboot", "miners": ["9" * 30, "-1", "x", "١"]}
    assert "No miners selected." in html(owner.post("/miners/actions/", junk, **HTMX))
    unknown = owner.post("/miners/actions/", {"kind": "format_disk"}, follow=True)
    assert "Choose an action" in html(unknown)
    ok = owner.post("/miners/actions/", {"kind": "reboot", "miners": [fleet[0].pk]}, **HTMX)
    assert ok["HX-Redirect"] == f"/jobs/{Job.unscoped.get().pk}/"


@pytest.mark.parametrize(
    ("kind", "fields", "params"),
    [
        ("set_power_target", {"watts": "3100"}, {"watts": 3100, "mode": None}),
        ("set_power_target", {"mode": "efficiency"}, {"watts": None, "mode": "efficiency"}),
        (
            "set_cooling",
            {"mode": "manual", "speed_percent": "80"},
            {"mode": "manual", "speed_percent": 80, "target_temp_c": None},
        ),
        (
            "set_pools",
            {
                "pools.0.url": "stratum+tcp://pool.example:3333",
                "pools.0.user": "acct.{site}.{name}",
                "pools.0.password": "x",
                "pools.1.url": "stratum+tcp://backup.example:3333",
                "pools.1.user": "{site}.{name}",
            },
            {
                "pools": [
                    {
                        "url": "stratum+tcp://pool.example:3333",
                        "user": "acct.{site}.{name}",
                        "password": "***",
                        "authority_pubkey": "",
                    },
                    {
                        "url": "stratum+tcp://backup.example:3333",
                        "user": "{site}.{name}",
                        "password": "",
                        "authority_pubkey": "",
                    },
                ]
            },
        ),
    ],
)
def test_bulk_forms_build_the_actions_parameters(
    kind: str, fields: dict[str, str], params: dict[str, Any], org_a: OrgWorld, fleet: list[Miner]
) -> None:
    owner = signed_in(org_a.users["owner"])
    data = {f"{kind}-{name}": value for name, value in fields.items()}
    response = bulk(owner, kind, miners=[m.pk for m in fleet], **data)
    assert response.status_code == 302, html(owner.get(response["Location"]))
    assert Job.unscoped.get().params == params


def test_a_site_role_widens_and_narrows_the_controls(org_a: OrgWorld, fleet: list[Miner]) -> None:
    """A viewer of the org who operates site 2: reboot is offered there, refused at site 1."""
    from accounts.models import Role, SiteRoleAssignment

    viewer = org_a.users["viewer"]
    operator = Role.unscoped.get(slug="operator", org__isnull=True)
    SiteRoleAssignment.unscoped.create(user=viewer, site=org_a.sites[1], role=operator)
    client = signed_in(viewer)
    at_site_1, at_site_2 = fleet[0], fleet[2]
    assert "/actions/reboot/" in html(client.get(f"/miners/{at_site_2.pk}/"))
    assert "/actions/reboot/" not in html(client.get(f"/miners/{at_site_1.pk}/"))
    assert 'name="kind" value="reboot"' in html(client.get("/miners/"))
    assert client.post(f"/miners/{at_site_1.pk}/actions/reboot/").status_code == 403
    mixed = bulk(client, "reboot", miners=[at_site_1.pk, at_site_2.pk], follow=True)
    assert "miner:reboot" in html(mixed) and not Job.unscoped.exists()  # all or nothing
    bulk(client, "reboot", miners=[at_site_2.pk])
    assert Job.unscoped.get().total == 1


def test_select_all_matching_acts_on_the_filter_and_refuses_a_broken_one(
    org_a: OrgWorld, fleet: list[Miner]
) -> None:
    owner = signed_in(org_a.users["owner"])
    site = org_a.sites[0]
    listing = html(owner.get("/miners/", {"site": site.pk}))
    assert f'name="site" value="{site.pk}" form="bulk-form"' in listing
    bulk(owner, "start_mining", all_matching="1", site=site.pk, miners=[fleet[2].pk])
    job = Job.unscoped.get()
    assert job.total == 2 and {i.miner_id for i in job.items.all()} == {m.pk for m in fleet[:2]}
    response = bulk(owner, "start_mining", all_matching="1", site="999999")
    assert response.status_code == 302 and Job.unscoped.count() == 1  # not "every miner"
    assert "filters changed" in html(owner.get(response["Location"]))


def test_a_job_can_be_cancelled_by_who_may_run_it(
    org_a: OrgWorld, fleet: list[Miner], job: Job
) -> None:
    viewer = signed_in(org_a.users["viewer"])
    viewer.post(f"/jobs/{job.pk}/cancel/")
    job.refresh_from_db()
    assert job.status == "queued"
    response = signed_in(org_a.users["field_tech"]).post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled" and "Cancelled" in html(response)


# --- a miner's page -----------------------------------------------------------------------------


def test_detail_shows_the_last_poll(org_a: OrgWorld, fleet: list[Miner]) -> None:
    miner = next(m for m in fleet if m.driver == "protoos")
    latest = MinerLatest.objects.get(miner=miner)
    body = html(signed_in(org_a.users["viewer"]).get(f"/miners/{miner.pk}/"))
    for heading in ("Hashboards", "Pools", "Fans", "Power supplies", "History"):
        assert f"<h2>{heading}</h2>" in body
    assert f"{latest.hashrate_ths:,.1f} TH/s" in body
    assert latest.pools[0]["url"] in body
    assert 'id="miner-series" type="application/json"' in body and "data-chart-fields" in body
    week = html(signed_in(org_a.users["viewer"]).get(f"/miners/{miner.pk}/?range=7d"))
    assert (
        f'href="/miners/{miner.pk}/?range=7d" data-chart-range="604800" aria-current="true"' in week
    )
    assert f'data-chart-api="/api/v1/miners/{miner.pk}/samples/"' in week


def test_single_action_from_the_detail_page_shows_the_job_in_place(
    org_a: OrgWorld, fleet: list[Miner], rigs: ThreadedFleet
) -> None:
    miner = next(m for m in fleet if m.driver == "protoos")
    operator = signed_in(org_a.users["operator"])
    response = operator.post(f"/miners/{miner.pk}/actions/blink/", {"blink-seconds": "20"}, **HTMX)
    body = html(response)
    job = Job.unscoped.get()
    assert body.lstrip().startswith('<section class="card" id="miner-actions">')
    assert f'hx-get="/jobs/{job.pk}/?view=status" hx-trigger="every 2s"' in body
    job_execute(job.pk)
    status = html(operator.get(f"/jobs/{job.pk}/?view=status", **HTMX))
    assert "Done" in status and "every 2s" not in status
    assert rigs.fleet.miner(miner.host).locate_on(time.time())
    # without htmx: the job's page
    plain = operator.post(f"/miners/{miner.pk}/actions/start_mining/")
    assert plain["Location"].startswith("/jobs/")


def test_a_missing_capability_is_a_disabled_control_with_the_reason(
    org_a: OrgWorld, fleet: list[Miner]
) -> None:
    owner = signed_in(org_a.users["owner"])
    antminer = next(m for m in fleet if m.driver == "antminer")
    body = html(owner.get(f"/miners/{antminer.pk}/"))
    watts = re.search(r'<input[^>]*name="set_power_target-watts"[^>]*>', body)
    assert (
        watts and "disabled" in watts.group(0) and "Not on this miner: pick a mode instead." in body
    )
    Miner.unscoped.filter(pk=antminer.pk).update(capabilities=["blink"])
    body = html(owner.get(f"/miners/{antminer.pk}/"))
    assert re.search(
        r'<button type="button" class="btn btn-sm" disabled[^>]*>Reboot</button>', body
    )
    assert "Reboot isn't available:" in body and "has no reboot support." in body
    assert re.search(r'<button type="submit" name="kind" value="blink"', body)
    refused = owner.post(f"/miners/{antminer.pk}/actions/reboot/", **HTMX)
    assert "has no reboot support" in html(refused) and not Job.unscoped.exists()


def test_rename_move_credentials_and_delete(org_a: OrgWorld, fleet: list[Miner]) -> None:
    owner = signed_in(org_a.users["owner"])
    miner = fleet[0]
    response = owner.post(
        f"/miners/{miner.pk}/edit/",
        {"name": "A-01", "tags": "immersion, row-3", "rack": "R3", "position": "12"},
    )
    assert response.status_code == 302
    miner.refresh_from_db()
    assert (miner.name, miner.tags, miner.rack) == ("A-01", ["immersion", "row-3"], "R3")
    blank = owner.post(f"/miners/{miner.pk}/edit/", {"name": ""})
    assert blank.status_code == 200 and "This field is required." in html(blank)

    owner.post(f"/miners/{miner.pk}/move/", {"site": org_a.sites[1].pk})
    miner.refresh_from_db()
    assert miner.site_id == org_a.sites[1].pk

    version = miner.credential_version
    owner.post(f"/miners/{miner.pk}/credentials/", {"username": "root", "password": PASSWORD})
    miner.refresh_from_db()
    assert miner.credential_version == version + 1 and miner.username == "root"
    body = html(owner.get(f"/miners/{miner.pk}/"))
    assert PASSWORD not in body and "miner.credentials" in body and "miner.move" in body

    response = owner.post(f"/miners/{miner.pk}/delete/", follow=True)
    assert not Miner.unscoped.filter(pk=miner.pk).exists() and "Deleted A-01" in html(response)


def test_an_operator_may_not_delete(org_a: OrgWorld, fleet: list[Miner]) -> None:
    operator = signed_in(org_a.users["operator"])
    assert operator.post(f"/miners/{fleet[0].pk}/delete/").status_code == 403
    assert Miner.unscoped.filter(pk=fleet[0].pk).exists()


# --- adding a miner ---------------------------------------------------------------------------


def test_add_a_miner_from_the_dialog(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    operator = signed_in(org_a.users["operator"])
    listing = html(operator.get("/miners/"))
    assert '<dialog id="add-miner"' in listing and "No miners yet" in listing
    assert "make run" in listing and "/api/v1/miners/" in listing
    assert (
        'id="bulk-form"' not in listing and 'id="miner-filter"' not in listing
    )  # nothing to act on
    host = rigs.inventory[0]["host"]
    data = {"site": org_a.sites[0].pk, "host": host, "password": PASSWORD}
    response = operator.post("/miners/add/", data, **HTMX)
    miner = Miner.unscoped.get(host=host)
    assert response["HX-Redirect"] == f"/miners/{miner.pk}/"
    fresh = html(operator.get(f"/miners/{miner.pk}/"))  # not polled yet: no figures
    assert "Never" in fresh and "No samples in this range" in fresh
    assert miner.name in html(operator.get("/miners/"))
    again = operator.post("/miners/add/", data, **HTMX)
    assert "already in the fleet" in html(again) and 'id="add-miner-form"' in html(again)
    public = operator.post("/miners/add/", {"site": org_a.sites[0].pk, "host": "8.8.8.8"})
    assert public.status_code == 200 and "<h1>Add a miner</h1>" in html(public)
    assert 'class="field has-error"' in html(public)
    wrong = operator.post(
        "/miners/add/", data | {"host": rigs.inventory[1]["host"], "password": "nope"}
    )
    assert "refused the login" in html(wrong)
    assert Miner.unscoped.count() == 1


def test_add_offers_only_sites_where_the_caller_may_pair(org_a: OrgWorld, org_b: OrgWorld) -> None:
    body = html(signed_in(org_a.users["owner"]).get("/miners/add/"))
    assert org_a.sites[0].name in body and org_b.sites[0].name not in body
    response = signed_in(org_a.users["owner"]).post(
        "/miners/add/", {"site": org_b.sites[0].pk, "host": "10.1.2.3"}
    )
    assert "Select a valid choice" in html(response) and not Miner.unscoped.exists()


# --- the list at size ------------------------------------------------------------------------


def test_list_filters_sorts_and_pages_in_the_database(org_a: OrgWorld) -> None:
    make_miners(org_a, 130)
    viewer = signed_in(org_a.users["viewer"])
    first = html(viewer.get("/miners/", {"ordering": "-hashrate_ths"}))
    assert first.index("rig-00129") < first.index("rig-00128")
    assert "1–50 of 130 miners" in first and 'aria-sort="descending"' in first
    third = html(viewer.get("/miners/", {"ordering": "name", "page": 3}))
    assert "101–130 of 130" in third and "rig-00129" in third and "rig-00000" not in third
    offline = html(viewer.get("/miners/", {"health": "offline"}, **HTMX))
    assert "1–13 of 13" in offline and offline.lstrip().startswith('<section id="miner-results"')
    assert "1–1 of 1" in html(viewer.get("/miners/", {"search": "rig-00042"}))
    s19 = html(viewer.get("/miners/", {"model": "s19", "firmware": "fw-1"}))
    assert "of 22 miners" in s19  # i % 3 == 0 and i even: 0, 6, …, 126
    session = viewer.session
    session["site_id"] = org_a.sites[1].pk
    session.save()
    by_switcher = html(viewer.get("/miners/"))
    assert (
        "of 65 miners" in by_switcher
        and f'<option value="{org_a.sites[1].pk}" selected>' in by_switcher
    )
    assert "of 130 miners" in html(viewer.get("/miners/", {"site": ""}))
    bogus = html(viewer.get("/miners/", {"site": "nope"}))
    assert "Some filters were ignored" in bogus


def test_list_queries_do_not_grow_with_the_fleet(org_a: OrgWorld) -> None:
    owner = signed_in(org_a.users["owner"])
    owner.get("/miners/")  # session, grants and site caches warm
    make_miners(org_a, 5)
    with CaptureQueriesContext(connection) as few:
        assert owner.get("/miners/", **HTMX).status_code == 200
    Miner.unscoped.all().delete()
    make_miners(org_a, 400)
    with CaptureQueriesContext(connection) as many:
        assert owner.get("/miners/", **HTMX).status_code == 200
    assert 0 < len(many) == len(few) <= 16, [q["sql"][:120] for q in many.captured_queries]


# --- the fleet dashboard ----------------------------------------------------------------------


def test_fleet_dashboard(org_a: OrgWorld, org_b: OrgWorld, fleet: list[Miner]) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    SampleRollup.objects.bulk_create(
        SampleRollup(
            miner=m,
            resolution=300,
            ts=now - dt.timedelta(minutes=5 * k),
            hashrate_ths=100.0,
            power_w=3000.0,
            count=30,
        )
        for m in fleet
        for k in range(1, 4)
    )
    response = signed_in(org_a.users["viewer"]).get("/fleet/")
    body = html(response)
    assert_csp_clean(response)
    for site in org_a.sites:
        assert site.name in body
    assert "3 of 3 miners reporting" in body and 'id="fleet-series"' in body
    assert "Needs a look" in body and "Last 24 hours" in body
    empty = html(signed_in(org_b.users["viewer"]).get("/fleet/"))
    assert "No miners yet" in empty and "make run" in empty


def test_fleet_series_sums_the_miners_of_each_bucket(org_a: OrgWorld, org_b: OrgWorld) -> None:
    mine, theirs = make_miners(org_a, 3), make_miners(org_b, 1)
    now = timezone.now()
    at = now - dt.timedelta(minutes=30)
    SampleRollup.objects.bulk_create(
        SampleRollup(miner=m, resolution=300, ts=at, hashrate_ths=10.0 * (i + 1), power_w=1000.0)
        for i, m in enumerate([*mine, *theirs])
    )
    SampleRollup.objects.create(
        miner=mine[0], resolution=300, ts=now - dt.timedelta(hours=30), hashrate_ths=1.0
    )
    series = fleet_series(Miner.unscoped.filter(org=org_a.org), end=now)
    assert series["step"] == 300
    assert series["points"] == [{"t": at, "hashrate_ths": 60.0, "power_w": 3000.0, "miners": 3}]


def test_worst_performers_put_the_down_first_then_the_slow(org_a: OrgWorld) -> None:
    miners = make_miners(org_a, 12)  # rig-00000 and rig-00010 are offline
    MinerLatest.objects.filter(miner=miners[5]).update(hashrate_ths=20.0)  # far below its S21s
    Miner.unscoped.filter(pk=miners[7].pk).update(health=MinerHealth.DEGRADED)
    worst = worst_performers(Miner.unscoped.filter(org=org_a.org), limit=4)
    names = [row.miner.name for row in worst]
    assert names[:3] == ["rig-00000", "rig-00010", "rig-00007"]
    assert names[3] == "rig-00005" and worst[3].ratio is not None and worst[3].ratio < 0.25
    assert worst[0].ratio is None  # an offline miner's figures are stale: no ratio shown


def test_job_page_queries_do_not_grow_with_the_job(org_a: OrgWorld) -> None:
    owner = signed_in(org_a.users["owner"])
    miners = make_miners(org_a, 150)
    small = job_create(actor=SYSTEM, org=org_a.org, kind="reboot", params={}, miners=miners[:5])
    large = job_create(actor=SYSTEM, org=org_a.org, kind="reboot", params={}, miners=miners)
    owner.get(f"/jobs/{small.pk}/")
    counts = []
    for job in (small, large):
        with CaptureQueriesContext(connection) as queries:
            body = html(owner.get(f"/jobs/{job.pk}/", **HTMX))
        counts.append(len(queries))
        assert body.count(">Skipped</span>") == min(job.total, 100)  # test rows can't reboot
    assert 0 < counts[0] == counts[1] <= 12, counts


def test_offline_miners_show_as_stale_and_add_nothing_to_the_totals(org_a: OrgWorld) -> None:
    """An offline miner's last figures are shown as such ("last seen …", "Not reporting"),
    never as its current state, and the dashboard's "N of M reporting" and hashrate leave
    it out (rig-00000 and rig-00010 are offline, each with its last 100 / 110 TH/s)."""
    miners = make_miners(org_a, 20)
    ago = timezone.now() - dt.timedelta(minutes=7)
    MinerLatest.objects.filter(miner__in=[miners[0], miners[10]]).update(updated_at=ago)
    viewer = signed_in(org_a.users["viewer"])
    dashboard = html(viewer.get("/fleet/"))
    assert "18 of 20 miners reporting" in dashboard
    reporting = sum(100.0 + i for i in range(20) if i % 10)
    kpi = re.search(r'Hashrate</div><div class="stat">([^<]+)<', dashboard)
    assert kpi and kpi.group(1) == f"{reporting / 1000:,.1f} PH/s"
    assert "2 not counted (last figures stale)" in dashboard
    offline = html(viewer.get(f"/miners/{miners[0].pk}/"))
    state = re.search(r'data-live-field="state"[^>]*>([^<]+)<', offline)
    assert state and state.group(1) == "Not reporting"
    assert "last seen <time" in offline and "7\xa0minutes ago" in offline
    assert 'class="stat stale" data-live-field="hashrate"' in offline
    online = html(viewer.get(f"/miners/{miners[1].pk}/"))
    state = re.search(r'data-live-field="state"[^>]*>([^<]+)<', online)
    assert state and state.group(1) == "Mining" and "Not reporting" not in online
    assert 'class="stat" data-live-field="hashrate"' in online
    listed = html(viewer.get("/miners/"))
    row = re.search(rf'<tr data-live-miner="{miners[0].pk}"[^>]*>(.*?)</tr>', listed, re.S)
    assert row and 'title="Not reporting' in row.group(0)
    assert row.group(1).count(" stale") == 4
    worst = worst_performers(Miner.unscoped.filter(org=org_a.org), limit=3)
    assert [(w.miner.name, w.reporting) for w in worst[:2]] == [
        ("rig-00000", False),
        ("rig-00010", False),
    ]
