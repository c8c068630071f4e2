"""The remote-commands page in Chromium against a real sshd: tick a host, choose a command (htmx
swaps in its arguments and keeps the tick), run it, read each host's output."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.terminals import conftest as terminal_fixtures
from tests.terminals.conftest import Sshd
from tests.terminals.test_remote import ssh_host

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
sshd = terminal_fixtures.sshd


@pytest.fixture(autouse=True)
def _loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # live_server runs in this process


def test_choose_a_command_and_a_host_run_it_and_read_the_output(
    page: Page, org_a: OrgWorld, sshd: Sshd
) -> None:
    host = ssh_host(org_a, sshd, "rig shell")
    page.goto("/terminals/commands/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page.get_by_role("heading", name="Remote commands")).to_be_visible()

    page.get_by_label("rig shell").check()
    page.get_by_label("Command").select_option(label="Fetch the last lines of a log")
    lines = page.get_by_label("Lines")
    expect(lines).to_have_value("200")  # htmx swapped in the command's arguments
    expect(page).to_have_url(re.compile(r"command=fetch_logs"))
    expect(page.get_by_label("rig shell")).to_be_checked()
    lines.fill("3")
    page.get_by_role("button", name="Run on the chosen hosts").click()
    results = page.locator("#run-results")
    expect(results).to_contain_text("tail -n 3 /var/log/miner.log", timeout=20_000)
    expect(results.locator(f'[data-run-host="{host.pk}"]')).to_contain_text("rig shell")

    page.get_by_label("Command").select_option(label="Uptime and load")
    expect(page.get_by_label("Lines")).to_have_count(0)
    expect(page.get_by_label("rig shell")).to_be_checked()
    page.get_by_role("button", name="Run on the chosen hosts").click()
    ours = page.locator(f'#run-results [data-run-host="{host.pk}"]')
    expect(ours.locator("pre")).to_contain_text("load average", timeout=20_000)
    expect(ours).to_contain_text("OK")
    expect(ours).to_contain_text("Exit status 0")
