"""The single-miner view in a real browser, against simulated rigs through the real proxy.

The proxy is a plain ASGI handler in front of Django (``config.asgi``), which pytest-django's
WSGI ``live_server`` doesn't serve: like test_live_pages, this module runs daphne on the test
database, allowed to dial the simulators on loopback. Console errors fail the tests (CSP
violations included), except the browser's own note about a proxied 502 where one is expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from accounts.actor import Actor
from accounts.models import ActivityEvent
from fleet import dial
from fleet.models import Job, Miner, MinerLatest
from fleet.services import jobs
from fleet.services.credentials import credentials_store
from fleet.services.miners import miner_add
from tests.browser import test_live_pages as live_pages
from tests.browser.conftest import LIVE_RIG_MARKS, console_problems, sign_in
from tests.browser.test_fleet_pages import PHONE, off_loop, shoot, shots
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.conftest import PASSWORD as RIG_PASSWORD
from tests.fleet.conftest import ThreadedFleet
from tests.proxy.test_antminer import add_antminer

pytestmark = LIVE_RIG_MARKS
asgi_server = live_pages.asgi_server


@pytest.fixture(autouse=True)
def _daphne_dials_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daphne process reads its allowlist from the environment (before it starts), and
    starts without cached rig tokens of an earlier run."""
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    if django_settings.REDIS_URL:
        client = redis.Redis.from_url(django_settings.REDIS_URL)
        for key in client.scan_iter("rw:proxy:*"):
            client.delete(key)


@pytest.fixture
def view_page(browser: Browser, asgi_server: str) -> Iterator[tuple[Page, list[str]]]:
    """A page on the daphne server and the console errors it logs (checked by each test)."""
    context = browser.new_context(base_url=asgi_server, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    yield page, console_problems(page)
    context.close()


def _proto(org: OrgWorld, rigs: ThreadedFleet, index: int = 0) -> Miner:
    entry = [e for e in rigs.inventory if e["kind"] == "protoos"][index]
    return miner_add(
        actor=Actor.system("tests"), site=org.sites[0], host=entry["host"], password=RIG_PASSWORD
    )


def _open_live_view(page: Page, miner: Miner) -> None:
    """As the owner, open the rig's view from the miners list and wait for live figures from
    the rig, through the proxy."""
    page.goto("/miners/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    row = page.locator(f'tr[data-live-miner="{miner.pk}"]')
    row.get_by_role("link", name=f"Live view of {miner.name}").click()
    expect(page).to_have_url(f"{page.url.split('/miners/')[0]}/miners/{miner.pk}/view/")
    expect(page.locator("body")).to_have_attribute("data-mv-state", "live", timeout=15_000)
    expect(page.locator('[data-mv="hashrate"]')).to_contain_text("TH/s")


def test_open_a_miner_from_the_list_and_change_its_power_target(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet, tmp_path: Path
) -> None:
    page, problems = view_page
    miner = _proto(org_a, rigs)
    rig = rigs.fleet.miner(miner.host)
    before = rig.power_target_w

    _open_live_view(page, miner)
    expect(page.locator('[data-mv="power_target"]')).to_have_text(f"target {before:,} W")
    expect(page.locator(".mv-board")).to_have_count(rig.model.boards)
    assert page.locator(".mv-asic").count() > 0, "the ASIC heatmap has cells"
    expect(page.locator("[data-mv-fans] tbody tr").first).to_be_visible()
    expect(page.locator("[data-mv-psus] tbody tr").first).to_be_visible()
    expect(page.locator("[data-mv-pools] tbody tr").first).to_contain_text("stratum+tcp://")
    expect(page.locator("[data-mv-errors]")).to_contain_text("No active errors")
    expect(page.locator("#mv-watts")).to_have_value(str(before))
    shoot(page, shots(tmp_path), "miner-view")

    target = before - 300
    page.locator("#mv-watts").fill(str(target))
    page.locator("#mv-power").get_by_role("button", name="Apply").click()
    expect(page.locator('[data-mv-form-result="power"]')).to_have_text(
        f"Power target set to {target:,} W.", timeout=10_000
    )
    assert rig.power_target_w == target, "the simulator took the new target"
    expect(page.locator('[data-mv="power_target"]')).to_have_text(f"target {target:,} W")
    event = ActivityEvent.unscoped.get(verb="miner.proxy_write", target_id=str(miner.pk))
    assert event.details["path"] == "/api/v1/mining/target" and event.details["status"] == 200

    # pools: saved as the audited Fleet action (a job of one), which a worker then runs
    backup = "stratum+tcp://backup2.sim-pool.example:3333"
    page.locator("#mv-pools summary").click()
    page.locator("#mv-pool-1-url").fill(backup)
    page.locator("#mv-pools").get_by_role("button", name="Save pools").click()
    expect(page.locator('[data-mv-form-result="pools"]')).to_contain_text("Saved as job #")
    job = Job.unscoped.get(kind="set_pools", items__miner=miner)
    expect(page.get_by_role("link", name="follow the job")).to_have_attribute(
        "href", f"/jobs/{job.pk}/"
    )
    off_loop(jobs.job_execute, job.pk)
    assert backup in [pool.url for pool in rig.pools]
    expect(page.locator("[data-mv-pools] tbody")).to_contain_text(backup, timeout=10_000)

    # logs: a source selector, shown in the page
    page.locator("#mv-log-source").select_option("os")
    page.locator("#mv-logs").get_by_role("button", name="Show").click()
    # the OS log of a freshly booted rig: a few timestamped lines of kernel/systemd/chronyd
    os_line = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (kernel|systemd|chronyd)")
    expect(page.locator("[data-mv-log]")).to_contain_text(os_line)
    with page.expect_download() as download:
        page.locator("[data-mv-download]").click()
    assert download.value.suggested_filename == f"{miner.name}-os.log"

    page.get_by_role("link", name="Back to the list").click()
    expect(page.locator(f'tr[data-live-miner="{miner.pk}"]')).to_be_visible()
    assert not problems, f"browser console errors: {problems}"


def test_rejected_credentials_are_shown_with_the_way_to_fix_them(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    page, problems = view_page
    miner = _proto(org_a, rigs, 1)
    credentials_store(miner, username="", password="not-the-rig-password")

    page.goto(f"/miners/{miner.pk}/view/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    status = page.locator("#mv-status")
    expect(status).to_be_visible(timeout=15_000)
    expect(status).to_contain_text("Credentials rejected")
    expect(status).to_contain_text("update them")
    expect(status.get_by_role("link", name="Update the credentials")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-mv-state", "error")
    unexpected = [p for p in problems if "status of 502" not in p]
    assert not unexpected, f"browser console errors: {unexpected}"


def test_an_unreachable_miner_is_said_so_and_recovers(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    page, problems = view_page
    miner = _proto(org_a, rigs, 1)
    rigs.fault(miner.host, "offline")
    try:
        page.goto(f"/miners/{miner.pk}/view/")
        sign_in(page, "owner@alpha.example", PASSWORD)
        status = page.locator("#mv-status")
        expect(status).to_contain_text("Miner unreachable", timeout=15_000)
        expect(status.get_by_role("link", name="Update the credentials")).to_be_hidden()
    finally:
        rigs.fault(miner.host, "offline", clear=True)
    # a later poll finds it again, without a reload (after failures the view asks less often:
    # 5 s, then 10, 20, up to 60 s)
    expect(page.locator("body")).to_have_attribute("data-mv-state", "live", timeout=30_000)
    expect(status).to_be_hidden()
    unexpected = [p for p in problems if "status of 502" not in p]
    assert not unexpected, f"browser console errors: {unexpected}"


def test_a_viewer_sees_the_rig_but_cannot_change_it(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet, tmp_path: Path
) -> None:
    page, problems = view_page
    miner = _proto(org_a, rigs)
    page.goto(f"/miners/{miner.pk}/view/")
    sign_in(page, "viewer@alpha.example", PASSWORD)
    expect(page.locator("body")).to_have_attribute("data-mv-state", "live", timeout=15_000)
    expect(page.locator('[data-mv="hashrate"]')).to_contain_text("TH/s")
    expect(page.locator("#mv-watts")).to_be_disabled()
    expect(page.locator("#mv-power").get_by_role("button", name="Apply")).to_be_disabled()
    expect(page.locator("#why-mv-power")).to_contain_text("miner:set_power_target")
    expect(page.locator('[data-mv-action="reboot"]')).to_be_disabled()
    expect(page.locator("#why-mv-reboot")).to_contain_text("miner:reboot")
    page.set_viewport_size(PHONE)
    expect(page.locator(".mv-asic").first).to_be_visible()
    shoot(page, shots(tmp_path), "miner-view-viewer-phone")
    assert not problems, f"browser console errors: {problems}"


def _antminer(org: OrgWorld, rigs: ThreadedFleet) -> Miner:
    """The rig's Antminer, paired with its driver's capabilities (the actions check them)."""
    miner = add_antminer(org, rigs)
    miner.capabilities = dial.capabilities(miner.device_info_for_dial())
    miner.save(update_fields=["capabilities"])
    return miner


def test_open_a_stock_antminer_blink_it_and_change_its_work_mode(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet, tmp_path: Path
) -> None:
    """The same page with the CGI adapter: live figures from stats/pools/summary, no PSU and no
    watt target (said so), the LED through the proxy, the work mode through the audited action."""
    page, problems = view_page
    miner = _antminer(org_a, rigs)
    rig = rigs.fleet.miner(miner.host)
    assert rig.work_mode == 0 and not rig.locate_on(rigs.fleet.clock.now())

    _open_live_view(page, miner)
    expect(page.locator('[data-mv="state"]')).to_have_text("Mining")
    expect(page.locator(".mv-board")).to_have_count(rig.model.boards)
    assert page.locator(".mv-asic").count() > 0, "the chip-sensor map has cells"
    expect(page.locator("[data-mv-fans] tbody tr").first).to_contain_text("rpm")
    expect(page.locator("[data-mv-pools] tbody tr").first).to_contain_text("stratum+tcp://")
    expect(page.locator("[data-mv-errors]")).to_contain_text("No active errors")
    expect(page.locator('[data-mv-missing="psus"]')).to_be_visible()
    expect(page.locator("#mv-watts")).to_have_count(0)
    expect(page.locator("#mv-mode")).to_have_value("maximum_hashrate")
    shoot(page, shots(tmp_path), "miner-view-antminer")

    # the LED: a proxied CGI write, audited, seen on the simulator
    page.locator('[data-mv-action="blink"]').click()
    expect(page.locator("[data-mv-action-result]")).to_have_text(
        "LED blinking until you stop it.", timeout=10_000
    )
    assert rig.locate_on(rigs.fleet.clock.now()), "the simulator's LED is on"
    expect(page.locator('[data-mv-action="blink"]')).to_have_text("Stop blinking")
    event = ActivityEvent.unscoped.get(verb="miner.proxy_write", target_id=str(miner.pk))
    assert event.details["path"] == "/cgi-bin/blink.cgi" and event.details["status"] == 200
    page.locator('[data-mv-action="blink"]').click()
    expect(page.locator("[data-mv-action-result]")).to_have_text("LED stopped.", timeout=10_000)
    assert not rig.locate_on(rigs.fleet.clock.now())

    # the work mode: the audited set_power_target action (a job of one), run by a worker
    page.locator("#mv-mode").select_option("efficiency")
    page.locator("#mv-power").get_by_role("button", name="Apply").click()
    expect(page.locator('[data-mv-form-result="power"]')).to_contain_text(
        "Work mode change saved as job #", timeout=10_000
    )
    job = Job.unscoped.get(kind="set_power_target", items__miner=miner)
    assert job.params.get("mode") == "efficiency"
    off_loop(jobs.job_execute, job.pk)
    assert rig.work_mode == 2, "the simulator is in low-power mode"
    expect(page.locator('[data-mv="state"]')).to_have_text("Low power", timeout=10_000)

    # logs: the kernel log (dmesg-stamped lines), the only one stock firmware serves
    page.locator("#mv-logs").get_by_role("button", name="Show").click()
    expect(page.locator("[data-mv-log]")).to_have_text(re.compile(r"^\[\s*\d+\.\d{6}\] "))
    assert not problems, f"browser console errors: {problems}"


def test_an_antminer_viewer_sees_it_but_cannot_change_it(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    page, problems = view_page
    miner = _antminer(org_a, rigs)
    page.goto(f"/miners/{miner.pk}/view/")
    sign_in(page, "viewer@alpha.example", PASSWORD)
    expect(page.locator("body")).to_have_attribute("data-mv-state", "live", timeout=15_000)
    expect(page.locator('[data-mv="hashrate"]')).to_contain_text("TH/s")
    expect(page.locator('[data-mv-action="blink"]')).to_be_disabled()
    expect(page.locator("#why-mv-blink")).to_contain_text("miner:blink_led")
    expect(page.locator("#mv-mode")).to_be_disabled()
    expect(page.locator("#mv-power").get_by_role("button", name="Apply")).to_be_disabled()
    assert not problems, f"browser console errors: {problems}"


def test_manual_cooling_needs_a_fan_speed_before_anything_is_sent(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    """Manual without a speed is refused by every rig (ProtoOS answers 400): the form requires
    the speed once Manual is picked, so nothing is sent until there is one."""
    page, problems = view_page
    miner = _proto(org_a, rigs)
    rig = rigs.fleet.miner(miner.host)
    _open_live_view(page, miner)
    speed = page.locator("#mv-fan-speed")
    expect(speed).not_to_have_attribute("required", "")
    page.locator("#mv-cooling-mode").select_option("Manual")
    expect(speed).to_have_attribute("required", "")
    speed.fill("")
    page.locator("#mv-cooling").get_by_role("button", name="Set cooling").click()
    assert speed.evaluate("el => el.validity.valueMissing")
    page.wait_for_timeout(500)
    assert not ActivityEvent.unscoped.filter(verb="miner.proxy_write").exists(), "nothing sent"
    assert rig.fan_mode == "Auto"

    speed.fill("60")
    page.locator("#mv-cooling").get_by_role("button", name="Set cooling").click()
    expect(page.locator('[data-mv-form-result="cooling"]')).to_have_text(
        "Cooling set to Manual.", timeout=10_000
    )
    assert rig.fan_mode == "Manual"
    assert not problems, f"browser console errors (a 400 included): {problems}"


def test_an_antminer_shows_the_fleets_power_and_needs_a_speed_for_manual(
    view_page: tuple[Page, list[str]], org_a: OrgWorld, rigs: ThreadedFleet
) -> None:
    """Stock firmware's web CGI has no power figure, but the fleet's poll (CGMiner RPC) does:
    the view shows the same power and efficiency as the list and the miner page, labelled."""
    page, problems = view_page
    miner = _antminer(org_a, rigs)
    now = timezone.now()
    MinerLatest.objects.update_or_create(
        miner=miner,
        defaults={"power_w": 3030.0, "efficiency_jth": 21.26, "updated_at": now, "full_at": now},
    )
    _open_live_view(page, miner)
    expect(page.locator('[data-mv="power"]')).to_have_text("3.03 kW")
    expect(page.locator('[data-mv="efficiency"]')).to_have_text("21.3 J/TH")
    source = page.locator('[data-mv-source="power"]')
    expect(source).to_contain_text("CGMiner RPC")
    expect(source).to_contain_text("polled")
    expect(page.get_by_text("Not reported by stock firmware")).to_have_count(0)
    # a later poll's figures show without a reload (the view re-reads the fleet's record)
    MinerLatest.objects.filter(miner=miner).update(power_w=2950.0, efficiency_jth=20.7)
    expect(page.locator('[data-mv="power"]')).to_have_text("2.95 kW", timeout=10_000)
    expect(page.locator('[data-mv="efficiency"]')).to_have_text("20.7 J/TH")

    # cooling: Manual needs a speed before the action is asked for
    page.locator("#mv-cooling-mode").select_option("Manual")
    page.locator("#mv-fan-speed").fill("")
    page.locator("#mv-cooling").get_by_role("button", name="Set cooling").click()
    assert page.locator("#mv-fan-speed").evaluate("el => el.validity.valueMissing")
    assert not Job.unscoped.filter(kind="set_cooling").exists()
    page.locator("#mv-fan-speed").fill("70")
    page.locator("#mv-cooling").get_by_role("button", name="Set cooling").click()
    expect(page.locator('[data-mv-form-result="cooling"]')).to_contain_text(
        "Cooling change saved as job #", timeout=10_000
    )
    job = Job.unscoped.get(kind="set_cooling")
    assert job.params == {"mode": "manual", "speed_percent": 70, "target_temp_c": None}
    assert not problems, f"browser console errors: {problems}"
