"""What a new user tripped over, in a real browser: phone tables, the sticky role matrix, CSP
violations on htmx swaps, steady columns under inline errors, the Sites page and the API docs.

Screenshots go to a temporary directory, or to RIGWARDEN_UX_SCREENSHOTS when set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from accounts.models import Role, Site, User
from tests.browser.conftest import sign_in
from tests.browser.test_screenshots import seed
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
# Every CSP refusal, whether or not the browser also logs it to the console.
RECORD_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("RIGWARDEN_UX_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def owner(db: None) -> User:
    return seed()


@pytest.fixture
def phone(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A phone-sized context that records console errors and CSP violations (fails on any)."""
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, device_scale_factor=1, has_touch=True
    )
    context.add_init_script(RECORD_CSP)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert not problems, f"browser console errors: {problems}"


def shoot(target: Page | Locator, path: Path, full_page: bool = False) -> None:
    """Playwright hides the text caret with an injected style, which the CSP refuses (and the
    console then reports): keep the caret."""
    if isinstance(target, Page):
        target.screenshot(path=str(path), full_page=full_page, caret="initial")
    else:
        target.screenshot(path=str(path), caret="initial")


def csp_violations(page: Page) -> list[str]:
    return page.evaluate("window.__csp || []")


# --- 6. Phones: tables keep their action column reachable ------------------------------------------


def on_screen_without_scrolling(page: Page, cell: str) -> None:
    """The page doesn't scroll sideways, and ``cell`` (a column header) shows at once."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = page.locator(cell).bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (cell, box)


def across(control: Locator) -> None:
    """``control`` is within the screen's width (wherever the page is scrolled vertically)."""
    box = control.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def scrolls_to_its_last_column(page: Page, table: str) -> None:
    """Whatever doesn't fit is reachable: the table's box scrolls sideways to its last column."""
    wrap = page.locator(table).locator("xpath=ancestor::div[contains(@class,'table-wrap')][1]")
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") in {"auto", "scroll"}
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    box, wrap_box = page.locator(f"{table} thead th:last-child").bounding_box(), wrap.bounding_box()
    assert box and wrap_box
    assert box["x"] + box["width"] <= wrap_box["x"] + wrap_box["width"] + 0.5


def test_phone_tables_keep_their_action_column_reachable(
    phone: Page, owner: User, shots: Path
) -> None:
    phone.goto("/accounts/login/")
    sign_in(phone, owner.email, PASSWORD)
    expect(phone.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    shoot(phone, shots / "phone-dashboard.png", full_page=True)
    # recent activity: what happened (the Action column) shows next to when
    expect(phone.locator("main table thead th").nth(1)).to_have_text("Action")
    on_screen_without_scrolling(phone, "main table thead th:nth-child(2)")
    scrolls_to_its_last_column(phone, "main table")

    phone.goto("/users/")
    shoot(phone, shots / "phone-users.png", full_page=True)
    # row actions stick to the right edge: Remove is on screen without scrolling sideways
    on_screen_without_scrolling(phone, "#member-list table thead th:last-child")
    across(phone.locator("#member-list tbody tr").first.get_by_role("button", name="Remove"))
    scrolls_to_its_last_column(phone, "#member-list table")

    phone.goto("/tokens/")
    shoot(phone, shots / "phone-tokens.png", full_page=True)
    on_screen_without_scrolling(phone, "#tokens table thead th:last-child")
    across(phone.get_by_role("button", name="Revoke").first)
    scrolls_to_its_last_column(phone, "#tokens table")
    shoot(phone.locator("#tokens .table-wrap"), shots / "phone-tokens-scrolled.png")
    assert csp_violations(phone) == []


# --- 6. The role matrix keeps its header, group rows and first column when scrolled ---------------


def test_role_matrix_headers_group_rows_and_first_column_stick(
    phone: Page, owner: User, shots: Path
) -> None:
    phone.goto("/roles/")
    sign_in(phone, owner.email, PASSWORD)
    expect(phone.get_by_label("Name of the role Shift lead")).to_be_visible()
    wrap = phone.locator(".matrix-wrap")
    wrap.scroll_into_view_if_needed()
    shoot(phone, shots / "phone-roles-top.png")
    head = phone.locator(".matrix thead th").nth(1)
    first_cell = phone.locator(".matrix tbody th[scope='row']").nth(6)
    wrap.evaluate("el => { el.scrollTop = el.scrollHeight / 2; el.scrollLeft = 400; }")
    shoot(phone, shots / "phone-roles-scrolled.png")
    wrap_box, head_box = wrap.bounding_box(), head.bounding_box()
    assert wrap_box and head_box
    assert abs(head_box["y"] - wrap_box["y"]) <= 2, (head_box, wrap_box)  # header stuck at top
    # the group row of what is on screen sits right under the header
    stuck_groups = [
        box
        for box in (g.bounding_box() for g in phone.locator(".matrix .group th").all())
        if box and abs(box["y"] - (head_box["y"] + head_box["height"])) <= 2
    ]
    assert stuck_groups, "no group row stuck under the header"
    label = phone.locator(".matrix .group th > span").first.bounding_box()
    assert label and label["x"] >= wrap_box["x"]  # the label follows the sideways scroll
    # the permission column stays at the left edge while the role columns scroll under it
    row_head = phone.locator(".matrix tbody th[scope='row']").nth(20).bounding_box()
    assert row_head and abs(row_head["x"] - wrap_box["x"]) <= 2, (row_head, wrap_box)
    assert first_cell.bounding_box() is not None
    assert csp_violations(phone) == []


def test_a_roles_url_lands_on_its_column(page: Page, owner: User, shots: Path) -> None:
    role = Role.unscoped.get(name="Shift lead")
    page.goto(f"/roles/{role.pk}/")
    sign_in(page, owner.email, PASSWORD)
    expect(page).to_have_url(re.compile(rf"/roles/#role-column-{role.pk}$"))
    column = page.locator(f"#role-column-{role.pk}")
    expect(column).to_be_in_viewport()
    assert page.evaluate("document.querySelector(':target')?.id") == f"role-column-{role.pk}"
    description = page.get_by_label("Description of the role Shift lead")
    expect(description).to_have_value("Operators who may also see members and the activity log.")
    shoot(page, shots / "roles-column.png")
    description.fill("Leads of a shift: operators who also see members.")
    column.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved the role Shift lead")
    role.refresh_from_db()
    assert role.description == "Leads of a shift: operators who also see members."


# --- 8. No CSP violation or console error across the pages and their htmx swaps --------------------


def test_no_csp_violations_across_pages_and_htmx_swaps(
    phone: Page, owner: User, shots: Path
) -> None:
    phone.set_viewport_size({"width": 1280, "height": 900})
    phone.goto("/accounts/login/")
    sign_in(phone, owner.email, PASSWORD)
    for path in ("/", "/users/", "/roles/", "/sites/", "/tokens/", "/security/", "/activity/"):
        phone.goto(path)
        expect(phone.locator("main h1")).to_be_visible()
        assert csp_violations(phone) == [], path

    phone.goto("/users/")
    phone.get_by_label("Search").fill("ruiz")  # live search swaps the list
    expect(phone.locator("#member-list tbody tr")).to_have_count(1)
    phone.get_by_label("Search").fill("")
    expect(phone.locator("#member-list tbody tr")).not_to_have_count(1)
    row = phone.locator("#member-list tr", has_text="priya.nair@hashbrook.example")
    row.get_by_label("Role of priya.nair@hashbrook.example").select_option(label="Operator")
    expect(phone.locator("#messages")).to_contain_text("is now Operator")
    phone.get_by_role("button", name="Dismiss").first.click()

    phone.goto("/roles/")
    phone.get_by_label("Name", exact=True).fill("Night shift")
    phone.get_by_role("button", name="Create role").click()
    expect(phone.get_by_label("Night shift: miner:reboot")).to_be_visible()
    phone.get_by_label("Night shift: miner:reboot").check()
    phone.locator("th", has=phone.get_by_label("Name of the role Night shift")).get_by_role(
        "button", name="Save"
    ).click()
    expect(phone.locator("#messages")).to_contain_text("Saved the role Night shift")

    phone.goto("/tokens/")
    phone.get_by_label("Name").fill("csp-check")
    phone.get_by_role("button", name="Create token").click()
    expect(phone.get_by_label("New API token")).to_have_value(re.compile(r"^rw_"))

    phone.goto("/activity/")
    phone.locator("main select").first.select_option(index=1)
    phone.wait_for_load_state("networkidle")

    phone.goto("/api/docs/")
    expect(phone.locator(".swagger-ui .info")).to_be_visible()
    assert csp_violations(phone) == []


# --- 9. An inline error in a row doesn't move the table's columns ----------------------------------


def column_lefts(page: Page, table: str) -> list[float]:
    return page.eval_on_selector_all(
        f"{table} thead th", "cells => cells.map(c => c.getBoundingClientRect().left)"
    )


def test_columns_stay_put_when_a_row_shows_an_error(page: Page, owner: User, shots: Path) -> None:
    page.goto("/users/")
    sign_in(page, "jonas.berg@hashbrook.example", PASSWORD)  # an admin: may not hand out Owner
    expect(page.locator("#member-list table")).to_be_visible()
    before = column_lefts(page, "#member-list table")
    row = page.locator("#member-list tr", has_text="ana.ruiz@hashbrook.example")
    row.get_by_label("Role of ana.ruiz@hashbrook.example").select_option(label="Owner")
    expect(row.get_by_role("alert")).to_contain_text("can't grant")
    shoot(page, shots / "users-row-error.png")
    after = column_lefts(page, "#member-list table")
    assert [round(x) for x in after] == [round(x) for x in before], (before, after)


# --- 5. The Sites page through the browser ---------------------------------------------------------


def test_sites_page_creates_renames_and_deletes_with_the_switcher_following(
    page: Page, owner: User, shots: Path
) -> None:
    page.goto("/sites/")
    sign_in(page, owner.email, PASSWORD)
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Sites")
    ).to_have_attribute("aria-current", "page")
    page.get_by_label("Name", exact=True).fill("Kiruna Hall")
    page.get_by_label("Location", exact=True).fill("Kiruna, SE")
    page.get_by_role("button", name="Create site").click()
    expect(page.locator("#messages")).to_contain_text("Created the site Kiruna Hall")
    expect(page.locator("#scope-site option", has_text="Kiruna Hall")).to_have_count(1)
    site = Site.unscoped.get(name="Kiruna Hall")

    page.get_by_label("Name of the site Kiruna Hall").fill("Kiruna Hall 2")
    page.locator(f"#site-{site.pk}").get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved the site Kiruna Hall 2")
    expect(page.locator("#scope-site option", has_text="Kiruna Hall 2")).to_have_count(1)
    shoot(page, shots / "sites.png", full_page=True)

    page.get_by_label("Site", exact=True).select_option(label="Kiruna Hall 2")  # the switcher
    expect(page).to_have_url(re.compile(r"/sites/$"))
    expect(page.locator(f"#site-{site.pk}")).to_have_class(re.compile("is-current"))

    page.locator(f"#site-{site.pk}").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#site-{site.pk}")).to_have_count(0)
    expect(page.locator("#scope-site option", has_text="Kiruna Hall 2")).to_have_count(0)
    assert not Site.unscoped.filter(pk=site.pk).exists()

    page.set_viewport_size(PHONE)
    page.reload()
    shoot(page, shots / "phone-sites.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


# --- 4. API docs: dark theme and a way back --------------------------------------------------------


def test_api_docs_follow_the_dark_theme_and_link_back(page: Page, owner: User, shots: Path) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible()
    assert page.evaluate("document.documentElement.classList.contains('dark-mode')")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(28, 32, 34)", background
    shoot(page, shots / "api-docs-dark.png")
    page.emulate_media(color_scheme="light")  # follows a change of the system theme
    # expect() polls from Python: wait_for_function would eval a string, which the CSP forbids
    expect(page.locator("html")).not_to_have_class(re.compile(r"\bdark-mode\b"))
    page.get_by_role("link", name="Back to Rigwarden").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))  # signed out: the app asks to sign in
