"""Playwright against Debian's Chromium (never a downloaded browser) and pytest-django's live_server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.fleet import conftest as fleet_fixtures

# the fleet suite's simulated rigs and loopback allowance, for the pages that show them
rigs = fleet_fixtures.rigs
loopback_allowed = fleet_fixtures.loopback_allowed
# the marks of a module whose pages are served by daphne and poll the simulated rigs
LIVE_RIG_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_allowed"),
]


@pytest.fixture(autouse=True)
def _own_cache(isolated_cache: None) -> None:
    """Every browser test gets its own cache namespace (see ``isolated_cache``)."""


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module (a loop left running would break later asyncio tests). Playwright's sync API keeps an asyncio loop in this thread
    while it lives, and Django refuses ORM calls (database setup, flushes, seeding, assertions)
    from a thread with a loop unless told they are safe — which they are: the loop is idle."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (or deselect with -m 'not browser')"
        )
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A fresh context per test; console errors (CSP violations included) fail the test."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    problems = console_problems(page)
    yield page
    context.close()
    assert not problems, f"browser console errors: {problems}"


def console_problems(page: Page) -> list[str]:
    """The console errors and uncaught exceptions of ``page`` as they happen (dialogs are
    accepted)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    return problems


def sign_in(page: Page, email: str, password: str) -> None:
    """Fill in the sign-in form on the current page (go to it first if needed)."""
    if "/accounts/login/" not in page.url:
        page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    # the form posts (a full navigation): return once the next page has loaded, so a test
    # never clicks on it before its scripts (htmx) are ready
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name="Sign in").click()
