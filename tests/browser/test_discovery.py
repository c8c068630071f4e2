"""The discovery page end to end: start a run over simulated miners on 127.x (allowed through
DISCOVERY_ALLOWED_NETWORKS, as an operator would list a range), watch the devices stream in
over /ws/live/ without a reload (the run history's row too), pair one with a wrong password
and see the refusal in its row (and reach it from the job page), pair them all, find them in
the miner list.

daphne serves the page (HTTP + WebSocket); this test process plays the Celery worker (the
scan and the pairing job), publishing through the same Redis channel layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from discovery import pairing, services
from discovery.models import DiscoveryRun
from fleet.models import Job, Miner
from tests.browser.conftest import LIVE_RIG_MARKS, sign_in
from tests.browser.test_fleet_pages import off_loop
from tests.browser.test_live_pages import asgi_server, live_context, live_open
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.conftest import PASSWORD as RIG_PASSWORD
from tests.fleet.conftest import ThreadedFleet

pytestmark = LIVE_RIG_MARKS
__all__ = ["asgi_server", "live_context"]


@pytest.fixture(autouse=True)
def _server_allows_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """daphne reads its settings from the environment it is started with."""
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    yield


def test_start_watch_pair(live_context: Any, org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    hosts = sorted(e["host"] for e in rigs.inventory)
    block = hosts[0].rsplit(".", 1)[0]
    page = live_context.new_page()
    page.goto("/discovery/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    page.goto("/discovery/")
    expect(page.get_by_text("No discovery runs yet")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no forms
    page.get_by_label("Targets", exact=True).fill(f"{block}.1-30")
    page.get_by_label("Ports", exact=True).fill("80, 443, 4028")
    page.get_by_role("button", name="Start discovery").click()
    run = DiscoveryRun.unscoped.get()
    section = page.locator(f'[data-discovery-run="{run.pk}"]')
    expect(section.locator('[data-run-field="total"]')).to_have_text("90")
    live_open(page)
    page.evaluate("window.__notReloaded = true")

    off_loop(services.run_execute, run.pk)  # what the worker does with the queued run

    rows = section.locator("tr[data-device]")
    expect(rows).to_have_count(3, timeout=15_000)
    for host in hosts:
        expect(section.locator("tbody")).to_contain_text(host)
    expect(section.locator('[data-run-field="outcome"]')).to_have_text("OK")
    expect(section.locator('[data-run-field="probed"]')).to_have_text("90")
    expect(section.locator('[data-run-field="found"]')).to_have_text("3")
    history = page.locator(f'[data-history-run="{run.pk}"]')  # the runs table follows too
    expect(history.locator('[data-history-field="status"]')).to_have_text("Done — OK")
    expect(history.locator('[data-history-field="found"]')).to_have_text("3")
    expect(history.locator('[data-history-field="new"]')).to_have_text("3")
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"

    # a wrong password: the job's device has no miner, its outcome shows in its row, live
    proto = next(e["host"] for e in rigs.inventory if e["kind"] == "protoos")
    row = section.locator("tr[data-device]", has_text=f"{proto}:")
    row.locator('input[name="device"]').check()
    page.get_by_label("Password", exact=True).fill("wrong-pass-1")
    page.get_by_role("button", name="Pair selected").click()
    expect(page).to_have_url(f"{page.url.split('?')[0]}?run={run.pk}")  # back on the run
    job = Job.unscoped.get(kind=pairing.JOB_KIND)
    expect(page.get_by_role("link", name=f"job {job.pk}")).to_be_visible()
    live_open(page)
    off_loop(pairing.pairing_execute, job.pk)
    row = page.locator("tr[data-device]", has_text=f"{proto}:")
    expect(row.locator("[data-device-pairing]")).to_contain_text("Needs credentials")
    page.goto(f"/jobs/{job.pk}/")  # the job page links back to the run
    page.get_by_role("link", name=f"discovery run {run.pk}").click()
    expect(page.locator("tr[data-device]", has_text=f"{proto}:")).to_contain_text(
        "Needs credentials"
    )

    page.get_by_label("Password", exact=True).fill(RIG_PASSWORD)
    page.get_by_role("button", name="Pair all new").click()
    second = Job.unscoped.filter(kind=pairing.JOB_KIND).exclude(pk=job.pk).get()
    # the job may end before the reloaded page's socket opens: the page reads the run's
    # devices back once it is open, so the outcome shows either way
    off_loop(pairing.pairing_execute, second.pk)
    live_open(page)
    cells = page.locator("[data-device-pairing]")
    for n in range(3):
        expect(cells.nth(n)).to_contain_text("Paired")
    expect(page.locator('input[name="device"]')).to_have_count(0)
    assert Miner.unscoped.filter(org=org_a.org).count() == 3

    page.goto("/miners/")
    for host in hosts:
        expect(page.locator("main")).to_contain_text(host)
    page.goto(f"/discovery/?run={run.pk}")  # a reload shows the run from the database
    expect(page.locator('[data-run-field="found"]')).to_have_text("3")


def test_live_rows_take_their_place_in_address_order(live_context: Any, org_a: OrgWorld) -> None:
    """Rows arriving over /ws/live/ go where a reload puts them: by address, numerically."""
    from accounts.actor import Actor
    from miners.scan import Found

    run = services.run_create(
        actor=Actor.for_user(org_a.users["operator"]),
        site=org_a.sites[0],
        target_list=["127.0.9.1-12"],
        ports=[80],
    )
    DiscoveryRun.unscoped.filter(pk=run.pk).update(status="running")

    def found(last: int) -> Found:
        return Found(f"127.0.9.{last}", 80, "http", "protoos", "Proto", "Rig", "1", "", f"S{last}")

    services.devices_ingest(run, [found(10), found(2), found(1)], node=None)
    page = live_context.new_page()
    page.goto("/discovery/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    page.goto(f"/discovery/?run={run.pk}")
    address = page.locator("tr[data-device] [data-device-address]")
    expect(address).to_have_text(["127.0.9.1:80", "127.0.9.2:80", "127.0.9.10:80"])
    live_open(page)
    off_loop(lambda: services.devices_ingest(run, [found(11), found(5)], node=None))
    expect(address).to_have_text(
        ["127.0.9.1:80", "127.0.9.2:80", "127.0.9.5:80", "127.0.9.10:80", "127.0.9.11:80"]
    )
