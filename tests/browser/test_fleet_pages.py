"""The fleet pages in a real browser: column chooser, multi-select and bulk actions, the add
dialog, charts, a job's live progress; screenshots at desktop and phone widths.

Screenshots go to a temporary directory, or to RIGWARDEN_SCREENSHOTS when set. Console errors
(CSP violations included) fail every test here (see conftest).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from fleet.models import Job, Miner
from fleet.services import jobs, polling
from fleet.services.miners import miner_add
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.conftest import PASSWORD as RIG_PASSWORD
from tests.fleet.conftest import ThreadedFleet
from tests.fleet.support import make_history, make_miners

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Jobs are queued, not sent to a worker: the test runs them (``jobs.job_execute``)."""
    ids: list[int] = []
    monkeypatch.setattr(jobs, "enqueue_job", ids.append)
    return ids


@pytest.fixture
def rig_miners(org_a: OrgWorld, rigs: ThreadedFleet) -> Iterator[list[Miner]]:
    """The simulated rigs, added to org A's first site, polled, with a day of history."""
    actor = Actor.system("tests")
    miners = [
        miner_add(actor=actor, site=org_a.sites[0], host=e["host"], password=RIG_PASSWORD)
        for e in rigs.inventory[:2]
    ]
    off_loop(polling.poll_shard, [m.pk for m in miners])
    make_history(miners)
    yield miners


def off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Playwright's sync API keeps an asyncio loop in this thread, and the live-update publisher
    (``async_to_sync``, after commit) refuses to run in one: polls and jobs run in a worker."""

    def run() -> Any:
        try:
            return work(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("RIGWARDEN_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shoot(page: Page, directory: Path, name: str) -> None:
    """The whole page at desktop width; what a phone shows first at phone width."""
    # caret="initial": Playwright's caret-hiding style is inline, which the CSP rightly blocks
    full = page.viewport_size is None or page.viewport_size["width"] > PHONE["width"]
    page.screenshot(path=str(directory / f"{name}.png"), full_page=full, caret="initial")


def test_column_chooser_and_multi_select(
    page: Page, org_a: OrgWorld, queued: list[int], tmp_path: Path
) -> None:
    make_miners(org_a, 120)
    page.goto("/miners/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    table = page.locator("table.miners")
    expect(table.locator("tbody tr")).to_have_count(50)

    # the chooser hides and shows columns, and the choice outlives a reload
    power = table.locator("th[data-col=power]")
    firmware = table.locator("th[data-col=firmware]")
    expect(power).to_be_visible()
    expect(firmware).to_be_hidden()  # hidden until chosen
    page.locator(".column-menu summary").click()
    chooser = page.get_by_role("group", name="Columns shown")
    chooser.get_by_label("Power", exact=True).uncheck()
    chooser.get_by_label("Firmware").check()
    expect(power).to_be_hidden()
    expect(firmware).to_be_visible()
    page.reload()
    expect(table.locator("th[data-col=power]")).to_be_hidden()
    expect(table.locator("td[data-col=firmware]").first).to_be_visible()

    # sorting and filtering swap the rows in place
    table.get_by_role("link", name="Hashrate").click()
    expect(page).to_have_url(re.compile(r"ordering=hashrate_ths"))
    expect(table.locator("th[data-col=hashrate]")).to_have_attribute("aria-sort", "ascending")
    table.get_by_role("link", name="Hashrate").click()
    expect(table.locator("tbody tr").first).to_contain_text("rig-00119")

    # select rows, the page, then everything matching; the bar follows
    bar = page.locator("#bulk-form")
    start = bar.get_by_role("button", name="Start mining")
    expect(start).to_be_disabled()
    page.get_by_label("Select rig-00119").check()
    expect(bar.locator("[data-selected-count]")).to_have_text("1 miner selected")
    expect(start).to_be_enabled()
    page.get_by_label("Select every miner on this page").check()
    expect(bar.locator("[data-selected-count]")).to_have_text("50 miners selected")
    everything = page.get_by_label(re.compile(r"Select all 120 miners"))
    expect(everything).to_be_visible()
    page.locator("#bulk-form summary", has_text="Pools").click()
    page.screenshot(path=str(shots(tmp_path) / "fleet-miners-selected.png"), caret="initial")
    page.locator("#bulk-form summary", has_text="Pools").click()
    everything.check()
    expect(bar.locator("[data-selected-count]")).to_have_text("120 miners selected")
    start.click()
    expect(page.get_by_role("heading", name="Start mining × 120 miners")).to_be_visible()
    job = Job.unscoped.get()
    assert queued == [job.pk] and job.total == 120 and job.kind == "start_mining"

    # a filter narrows "all matching"
    page.goto("/miners/")
    page.locator("#miner-filter").get_by_label("Health").select_option("offline")
    expect(page.locator("#miner-results")).to_contain_text("12 of 12 miners")
    page.get_by_label("Select every miner on this page").check()
    page.locator("#bulk-form").get_by_role("button", name="Stop mining").click()  # confirm accepted
    expect(page.get_by_role("heading", name="Stop mining × 12 miners")).to_be_visible()


def test_bulk_blink_follows_the_job_live(
    page: Page, org_a: OrgWorld, rig_miners: list[Miner], queued: list[int], tmp_path: Path
) -> None:
    directory = shots(tmp_path)
    make_miners(org_a, 40)
    page.goto("/miners/")
    sign_in(page, "field_tech@alpha.example", PASSWORD)
    expect(page.locator("#bulk-form").get_by_role("button", name="Reboot")).to_have_count(0)
    for miner in rig_miners:
        page.get_by_label(f"Select {miner.name}").check()
    page.locator("#bulk-form").get_by_role("button", name="Blink LED").click()
    expect(page.get_by_role("heading", name="Blink LED × 2 miners")).to_be_visible()
    expect(page.locator(".job-counts .badge")).to_have_text("Queued")
    off_loop(jobs.job_execute, queued[0])
    expect(page.locator(".job-counts .badge")).to_have_text("Done", timeout=10_000)  # polled
    expect(page.locator("#job-progress tbody .badge-ok")).to_have_count(2)
    shoot(page, directory, "fleet-job")
    page.set_viewport_size(PHONE)
    shoot(page, directory, "fleet-job-phone")


def test_miner_page_charts_and_a_single_action(
    page: Page, org_a: OrgWorld, rig_miners: list[Miner], queued: list[int], tmp_path: Path
) -> None:
    directory = shots(tmp_path)
    miner = rig_miners[0]
    page.goto(f"/miners/{miner.pk}/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    charts = page.locator("#miner-charts .chart")
    expect(charts).to_have_count(2)
    expect(charts.first.locator("canvas")).to_be_visible()
    expect(charts.first.locator(".u-legend")).to_contain_text("Hashrate (TH/s)")
    page.get_by_role("link", name="1h").click()
    expect(page.get_by_role("link", name="1h")).to_have_attribute("aria-current", "true")
    expect(charts.first.locator("canvas")).to_be_visible()  # drawn again from the API's data
    assert page.url.endswith(f"/miners/{miner.pk}/")  # fetched, not reloaded
    shoot(page, directory, "fleet-miner")

    actions = page.locator("#miner-actions")
    actions.get_by_role("button", name="Blink LED").click()
    status = actions.locator(".job-status")
    expect(status).to_contain_text("Queued")
    off_loop(jobs.job_execute, queued[0])
    expect(status).to_contain_text("done", timeout=10_000)

    actions.locator("summary", has_text="Pools").click()
    actions.get_by_label("Primary pool URL").fill("http://not-stratum")
    actions.get_by_role("button", name=f"Apply to {miner.name}").click()  # confirm accepted
    expect(actions.locator(".error")).to_contain_text("stratum+tcp://")
    assert len(queued) == 1
    actions.scroll_into_view_if_needed()
    page.screenshot(path=str(directory / "fleet-miner-pools-error.png"), caret="initial")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(charts.first.locator("canvas")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width}px)"
    shoot(page, directory, "fleet-miner-phone")
    page.locator("#miner-charts").scroll_into_view_if_needed()
    shoot(page, directory, "fleet-miner-phone-charts")


def test_add_dialog_dashboard_and_list_screenshots(
    page: Page, org_a: OrgWorld, rigs: ThreadedFleet, rig_miners: list[Miner], tmp_path: Path
) -> None:
    directory = shots(tmp_path)
    make_miners(org_a, 60)
    page.goto("/fleet/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    expect(page.get_by_role("heading", name="Fleet", exact=True)).to_be_visible()
    expect(page.locator(".chart canvas")).to_be_visible()
    expect(page.get_by_role("heading", name="Needs a look")).to_be_visible()
    shoot(page, directory, "fleet-dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Miners").click()
    shoot(page, directory, "fleet-miners")
    page.get_by_role("link", name="Add miner").click()
    dialog = page.get_by_role("dialog", name="Add a miner")
    expect(dialog).to_be_visible()
    dialog.get_by_label("IP address").fill("8.8.8.8")
    dialog.get_by_role("button", name="Add miner").click()
    expect(dialog.locator(".field.has-error")).to_contain_text("8.8.8.8")
    shoot(page, directory, "fleet-add-miner")
    host = rigs.inventory[2]["host"]
    dialog.get_by_label("IP address").fill(host)
    dialog.get_by_label("Password (optional)").fill(RIG_PASSWORD)
    dialog.get_by_role("button", name="Add miner").click()
    added = Miner.unscoped.filter(host=host)
    expect(page).to_have_url(re.compile(r"/miners/\d+/$"), timeout=15_000)
    assert added.exists() and page.url.endswith(f"/miners/{added.get().pk}/")

    for path, name in (("/fleet/", "fleet-dashboard-phone"), ("/miners/", "fleet-miners-phone")):
        page.set_viewport_size(PHONE)
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width}px)"
        shoot(page, directory, name)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.emulate_media(color_scheme="dark")
    page.goto("/fleet/")
    expect(page.locator(".chart canvas")).to_be_visible()
    shoot(page, directory, "fleet-dashboard-dark")


def test_a_new_org_is_told_how_to_start(page: Page, org_b: OrgWorld, tmp_path: Path) -> None:
    page.goto("/miners/")
    sign_in(page, "owner@bravo.example", PASSWORD)
    empty = page.locator(".empty")
    expect(empty.get_by_role("heading", name="No miners yet")).to_be_visible()
    expect(empty).to_contain_text("make run")
    expect(empty).to_contain_text("POST /api/v1/miners/")
    shoot(page, shots(tmp_path), "fleet-miners-empty")
    page.goto("/fleet/")
    expect(page.locator(".empty")).to_contain_text("No miners yet")


@pytest.mark.parametrize(
    ("hashrate", "power", "temp"),
    [
        ((203.8, 205.2), (3497.0, 3503.0), (65.8, 66.4)),  # one steady rig: a small range
        ((0.0, 98_000.0), (0.0, 3_450_000.0), (20.0, 95.0)),  # a large range
    ],
    ids=["small-range", "large-range"],
)
def test_history_axis_labels_are_distinct(
    page: Page,
    org_a: OrgWorld,
    hashrate: tuple[float, float],
    power: tuple[float, float],
    temp: tuple[float, float],
) -> None:
    """The History chart's value axes never print one label twice: a small range read
    "205, 205, 204, 204, 204" and "66, 66" (ticks 0.2 apart, labels rounded to whole
    numbers); large values still fit the axis."""
    import datetime as dt
    import math

    from django.utils import timezone

    from fleet.models import Sample

    miner = make_miners(org_a, 1)[0]
    now = timezone.now()

    def wave(span: tuple[float, float], k: int) -> float:
        low, high = span
        return low + (high - low) * (0.5 + 0.5 * math.sin(k / 9))

    Sample.objects.bulk_create(
        Sample(
            miner=miner,
            ts=now - dt.timedelta(seconds=30 * k),
            hashrate_ths=wave(hashrate, k),
            power_w=wave(power, k + 5),
            max_temp_c=wave(temp, k + 11),
        )
        for k in range(1, 110)
    )
    page.goto(f"/miners/{miner.pk}/?range=1h")
    sign_in(page, "owner@alpha.example", PASSWORD)
    expect(page.locator("#miner-charts .chart canvas")).to_have_count(2)
    axes = page.evaluate(
        "window.rwCharts.plots().map(p => p.axes.slice(1).map(a => a._values || []))"
    )
    labels = [values for plot in axes for values in plot]
    assert len(labels) == 3, axes  # hashrate, power; temperature
    for values in labels:
        assert len(values) >= 2, axes
        assert len(set(values)) == len(values), f"repeated axis labels: {values}"
        assert all(len(v) <= 7 for v in values), f"labels too wide for the axis: {values}"
