"""The fleet pages follow ``/ws/live/`` without a reload: a poll of the simulated miners shows up
in the miners list and on the dashboard.

pytest-django's ``live_server`` is Django's WSGI server, which speaks no WebSocket: this module
serves the app with a real daphne process (HTTP and WebSocket, one origin) against the test
database, and the test process publishes through the same Redis channel layer a Celery worker
would. Console errors (CSP violations included) fail the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from accounts.actor import Actor
from fleet.models import Miner, MinerLatest
from fleet.selectors import fleet_summary
from fleet.services import polling
from fleet.services.miners import miner_add
from fleet.templatetags.fleet_ui import hashrate
from tests.browser.conftest import LIVE_RIG_MARKS, sign_in
from tests.browser.test_fleet_pages import off_loop
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.conftest import PASSWORD as RIG_PASSWORD
from tests.fleet.conftest import ThreadedFleet
from tests.support import free_port, shared_database_url

pytestmark = LIVE_RIG_MARKS
ROOT = Path(__file__).resolve().parents[2]
DAPHNE = Path(sys.executable).parent / "daphne"


@pytest.fixture
def asgi_server(transactional_db: None, tmp_path: Path) -> Iterator[str]:
    """daphne on a free port, on the test database; stopped before the tables are flushed."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: the test process and daphne share the channel layer")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=shared_database_url(),
        FLEET_TESTING="1",  # the suite's password hasher, throttles off
        SECRET_KEY=django_settings.SECRET_KEY,
        PYTHONDONTWRITEBYTECODE="1",
    )
    port = free_port()
    log_path = tmp_path / "daphne.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail("daphne exited: " + log_path.read_text()[-2000:])
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("daphne did not answer within 60 s: " + log_path.read_text()[-2000:])
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def live_context(browser: Browser, asgi_server: str) -> Iterator[Any]:
    """A browser context on the daphne server; console errors of any of its pages fail the test."""
    context = browser.new_context(base_url=asgi_server, viewport={"width": 1440, "height": 900})
    problems: list[str] = []

    def watch(page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))

    context.on("page", watch)
    yield context
    context.close()
    assert not problems, f"browser console errors: {problems}"


def live_open(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-live-state", "open", timeout=10_000)


def test_the_dashboard_shows_live_numbers_from_the_simulator(
    live_context: Any, org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    actor = Actor.system("tests")
    miners = [
        miner_add(actor=actor, site=org_a.sites[0], host=e["host"], password=RIG_PASSWORD)
        for e in rigs.inventory[:2]
    ]
    assert not MinerLatest.objects.filter(miner__in=miners).exists()  # never polled yet

    listing = live_context.new_page()
    listing.goto("/miners/")
    sign_in(listing, "owner@alpha.example", PASSWORD)
    rows = {m.pk: listing.locator(f'tr[data-live-miner="{m.pk}"]') for m in miners}
    for row in rows.values():
        expect(row.locator("td[data-col=hashrate]")).to_have_text("—")
    live_open(listing)

    dashboard = live_context.new_page()
    dashboard.goto("/fleet/")
    total = dashboard.locator("#fleet-kpis .kpi").first.locator(".stat")
    live_open(dashboard)
    before = total.inner_text()  # nothing reports yet: "0.0 TH/s"

    for page in (listing, dashboard):  # a reload would lose this
        page.evaluate("window.__notReloaded = true")

    off_loop(polling.poll_shard, [m.pk for m in miners])

    for miner in miners:
        latest = MinerLatest.objects.get(miner=miner)
        assert latest.hashrate_ths, "the simulator reports a hashrate"
        expect(rows[miner.pk].locator("td[data-col=hashrate]")).to_have_text(
            hashrate(latest.hashrate_ths), timeout=10_000
        )
        expect(rows[miner.pk].locator("td[data-col=health] .badge")).to_have_text("OK")
    totals = fleet_summary(Miner.unscoped.filter(org=org_a.org))["totals"]
    assert hashrate(totals["hashrate_ths"]) != before
    expect(total).to_have_text(hashrate(totals["hashrate_ths"]), timeout=15_000)
    expect(dashboard.locator("#fleet-reporting")).to_contain_text("2 of 2 miners reporting")
    for page in (listing, dashboard):
        assert page.evaluate("window.__notReloaded === true"), f"{page.url} was reloaded"


def test_efficiency_and_staleness_follow_live(
    live_context: Any, org_a: OrgWorld, rigs: ThreadedFleet, settings: Any
) -> None:
    """Every figure of a list row that the delta carries updates live, efficiency included (it
    kept its old J/TH after a power change); a miner that stops reporting greys out with a
    "last seen" note and its page says "Not reporting" instead of the last state."""
    from fleet.templatetags.fleet_ui import efficiency

    settings.FLEET_POLL_DEADLINE = 1.0
    entry = rigs.inventory[0]
    miner = miner_add(
        actor=Actor.system("tests"), site=org_a.sites[0], host=entry["host"], password=RIG_PASSWORD
    )
    off_loop(polling.poll_shard, [miner.pk])
    first = MinerLatest.objects.get(miner=miner)
    listing = live_context.new_page()
    listing.goto("/miners/")
    sign_in(listing, "owner@alpha.example", PASSWORD)
    row = listing.locator(f'tr[data-live-miner="{miner.pk}"]')
    cell = row.locator("td[data-col=efficiency]")
    expect(cell).to_have_text(efficiency(first.efficiency_jth))
    detail = live_context.new_page()
    detail.goto(f"/miners/{miner.pk}/")
    kpis = detail.locator(f'.kpis[data-live-miner="{miner.pk}"]')
    state = kpis.locator('[data-live-field="state"]')
    expect(state).to_have_text("Mining")
    for page in (listing, detail):
        live_open(page)
        page.evaluate("window.__notReloaded = true")
    try:
        rigs.fault(entry["host"], "overheat")  # throttled: another J/TH
        off_loop(polling.poll_shard, [miner.pk])
        second = MinerLatest.objects.get(miner=miner)
        assert efficiency(second.efficiency_jth) != efficiency(first.efficiency_jth)
        expect(cell).to_have_text(efficiency(second.efficiency_jth), timeout=10_000)
        expect(kpis.locator('[data-live-field="efficiency"]')).to_have_text(
            efficiency(second.efficiency_jth), timeout=10_000
        )
        expect(kpis.locator("[data-live-stale-note]").first).to_be_hidden()
        rigs.fault(entry["host"], "offline")
        for _ in range(3):  # OFFLINE_AFTER missed polls
            off_loop(polling.poll_shard, [miner.pk])
        assert Miner.unscoped.get(pk=miner.pk).health == "offline"
        expect(row.locator("td[data-col=health] .badge")).to_have_text("Offline", timeout=10_000)
        expect(cell).to_have_class("num stale")
        expect(row.locator("td[data-col=hashrate]")).to_have_class("num stale")
        expect(state).to_have_text("Not reporting", timeout=10_000)
        expect(kpis.locator('[data-live-field="hashrate"]')).to_have_class("stat stale")
        expect(kpis.locator("[data-live-stale-note]").first).to_be_visible()
        for page in (listing, detail):
            assert page.evaluate("window.__notReloaded === true"), f"{page.url} was reloaded"
    finally:
        rigs.fault(entry["host"])
