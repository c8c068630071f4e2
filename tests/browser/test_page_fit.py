"""What a reviewer saw in a real browser: the miner page's Pools and Recent activity tables
clipped at 1400 px, and CSP console errors on the miner list around the Add-miner dialog."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import Site
from accounts.services.activity import activity_record
from fleet.models import Miner, MinerLatest
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.support import make_miners

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WIDE = {"width": 1400, "height": 900}


def _miner_with_long_pools_and_activity(org: OrgWorld) -> Miner:
    (miner,) = make_miners(org, 1)
    now = timezone.now()
    pools = [
        {
            "url": f"stratum+tcp://{name}.eu-west-3.mining-pool-with-a-long-name.example.com:3333",
            "user": f"{org.org.slug}-{org.sites[0].slug}.{miner.name}-worker-with-a-long-label",
            "status": status,
            "accepted": 1_234_567,
            "rejected": 12_345,
        }
        for name, status in (("primary", "active"), ("backup1", "alive"), ("backup2", "dead"))
    ]
    MinerLatest.objects.update_or_create(
        miner=miner,
        defaults={"state": "mining", "pools": pools, "updated_at": now, "full_at": now},
    )
    for verb in ("miner.proxy_write", "miner.credentials_update", "job.create"):
        activity_record(
            actor=Actor.for_user(org.users["owner"]),
            verb=verb,
            org=org.org,
            site=org.sites[0],
            target=miner,
            target_label=f"{miner.name} (Antminer S21 Hydro, a long model label)",
        )
    return miner


def _overflow(page: Page, selector: str) -> list[dict[str, Any]]:
    """Each table under ``selector`` whose content is wider than its scrolling wrapper."""
    found: list[dict[str, Any]] = page.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector + ' .table-wrap')).map((wrap) => ({
            heading: wrap.closest('section').querySelector('h2').textContent,
            scroll: wrap.scrollWidth, client: wrap.clientWidth,
            hidden: Array.from(wrap.querySelectorAll('th')).filter((th) => {
              const r = th.getBoundingClientRect(), w = wrap.getBoundingClientRect();
              return r.right > w.right + 1 || r.left < w.left - 1;
            }).map((th) => th.textContent),
        })).filter((t) => t.scroll > t.client + 1 || t.hidden.length)""",
        selector,
    )
    return found


def test_the_miner_pages_tables_fit_at_1400_px(page: Page, org_a: OrgWorld, tmp_path: Path) -> None:
    shots = tmp_path
    miner = _miner_with_long_pools_and_activity(org_a)
    page.set_viewport_size(WIDE)
    page.goto(f"/miners/{miner.pk}/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    expect(page.get_by_role("heading", name="Pools")).to_be_visible()
    expect(page.get_by_role("heading", name="Recent activity")).to_be_visible()
    assert _overflow(page, "main") == []
    for section in ("Pools", "Recent activity"):
        card = page.locator("section.card", has=page.get_by_role("heading", name=section))
        card.scroll_into_view_if_needed()
        for header in card.locator("th").all():
            expect(header).to_be_in_viewport()  # not pushed out of the card sideways
    page.locator("section.card", has=page.get_by_role("heading", name="Pools")).screenshot(
        path=str(shots / "miner-pools-1400.png")
    )
    page.screenshot(path=str(shots / "miner-page-1400.png"), full_page=True)


def test_the_miner_list_and_the_add_dialog_log_no_console_errors(
    page: Page, org_a: OrgWorld
) -> None:
    """The page fixture fails the test on any console error (CSP violations included); the
    dialog is opened, submitted with an error (an htmx swap), closed and reopened."""
    make_miners(org_a, 60)
    csp: list[str] = []
    page.on(
        "console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None
    )
    page.goto("/miners/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    # htmx took the page's config: no <style> of its own, no style attributes copied on settle
    # (htmx merges the <meta name="htmx-config"> when the document is ready: wait for that)
    page.wait_for_url(re.compile(r"/miners/$"))
    page.wait_for_load_state("load")
    config = page.evaluate(
        "() => [htmx.config.includeIndicatorStyles, htmx.config.attributesToSettle,"
        " document.querySelectorAll('style, [style]').length]"
    )
    assert config == [False, ["class", "width", "height"], 0], config
    page.get_by_role("link", name="Add miner").click()
    dialog = page.get_by_role("dialog", name="Add a miner")
    expect(dialog).to_be_visible()
    dialog.get_by_label("IP address").fill("8.8.8.8")
    dialog.get_by_role("button", name="Add miner").click()
    expect(dialog.locator(".field.has-error")).to_contain_text("8.8.8.8")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("link", name="Add miner").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_role("link", name="Next").first.click()  # an htmx swap of the list
    expect(page).to_have_url(re.compile(r"page=2"))
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.querySelectorAll('style, [style]').length") == 0
    assert csp == []


def test_add_miner_in_an_org_without_sites_points_to_the_sites_page(
    page: Page, org_a: OrgWorld
) -> None:
    Site.unscoped.filter(org=org_a.org).delete()
    page.goto("/miners/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    page.get_by_role("link", name="Add miner").first.click()
    dialog = page.get_by_role("dialog", name="Add a miner")
    expect(dialog.get_by_role("heading", name="Create a site first")).to_be_visible()
    dialog.get_by_role("link", name="Create a site").click()
    expect(page).to_have_url(re.compile(r"/sites/$"))
