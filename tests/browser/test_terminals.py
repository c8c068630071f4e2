"""The terminal workspace in Chromium against a real sshd, served by daphne (HTTP and
WebSocket): two panes, a command in each, a reload — the output is still on screen and each
shell is the same process (same PID)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from terminals.models import SshHost, TerminalSession
from terminals.services.hosts import host_add
from tests.browser import test_live_pages as live_pages
from tests.browser.conftest import sign_in
from tests.browser.test_fleet_pages import shots
from tests.conftest import PASSWORD, OrgWorld
from tests.terminals import conftest as terminal_fixtures
from tests.terminals.conftest import Sshd

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
asgi_server = live_pages.asgi_server
live_context = live_pages.live_context
sshd = terminal_fixtures.sshd


@pytest.fixture(autouse=True)
def _server_env(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Iterator[None]:
    """Before daphne starts (autouse runs first): it may dial loopback, records into tmp."""
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    # the same master key as this process, which encrypted the host's key (the default one
    # lives in DATA_DIR)
    key = base64.urlsafe_b64encode(django_settings.FLEET_MASTER_KEY).decode()
    monkeypatch.setenv("FLEET_MASTER_KEY", key)
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    yield


def add_host(world: OrgWorld, sshd: Sshd) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.users["admin"]),
        site=world.sites[0],
        name="rig shell",
        address="127.0.0.1",
        port=sshd.port,
        username="root",
        auth_method="key",
        secret=sshd.client_key,
    )


def pane_text(page: Page, index: int) -> str:
    return str(
        page.locator(".term-pane").nth(index).locator(".xterm-rows").inner_text(timeout=10_000)
    )


def wait_for_text(page: Page, index: int, pattern: str) -> re.Match[str]:
    compiled = re.compile(pattern)
    expect(page.locator(".term-pane").nth(index).locator(".xterm-rows")).to_contain_text(
        compiled, timeout=20_000
    )
    found = compiled.search(pane_text(page, index))
    assert found is not None
    return found


def run(page: Page, index: int, command: str) -> None:
    pane = page.locator(".term-pane").nth(index)
    pane.locator(".xterm-screen").click()
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def test_two_panes_survive_a_reload(
    live_context: Any, org_a: OrgWorld, sshd: Sshd, tmp_path: Path
) -> None:
    add_host(org_a, sshd)
    page = live_context.new_page()
    page.goto("/terminals/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page).to_have_url(re.compile(r"/terminals/$"))
    expect(page.locator("[data-terminals]")).to_have_attribute("data-ready", "")
    for _ in range(2):
        page.get_by_role("button", name="Open", exact=True).click()
    expect(page.locator(".term-pane")).to_have_count(2)
    for i in range(2):
        expect(page.locator(".term-pane").nth(i).locator("[data-pane-status]")).to_have_text(
            "Attached", timeout=20_000
        )
    pids = []
    for i in range(2):
        run(page, i, f"echo pane{i}-pid-$$-$((40+{i}))")
        pids.append(wait_for_text(page, i, rf"pane{i}-pid-(\d+)-4{i}").group(1))
    assert pids[0] != pids[1]
    # the grid fits two panes side by side
    boxes = [page.locator(".term-pane").nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and abs(boxes[0]["y"] - boxes[1]["y"]) < 2

    page.reload()
    expect(page.locator(".term-pane")).to_have_count(2)
    for i in range(2):
        # replayed from the server's buffer into the fresh page
        wait_for_text(page, i, rf"pane{i}-pid-{pids[i]}-4{i}")
        expect(page.locator(".term-pane").nth(i).locator("[data-pane-status]")).to_have_text(
            "Attached", timeout=20_000
        )
        run(page, i, f"echo again{i}-$$")
        assert wait_for_text(page, i, rf"again{i}-(\d+)").group(1) == pids[i]  # same shell
    page.screenshot(path=str(shots(tmp_path) / "terminals-workspace.png"), caret="initial")
    ids = set(TerminalSession.unscoped.values_list("id", flat=True))
    assert len(ids) == 2  # reattached: no new SSH session
    sidebar = page.locator("[data-session-list] li")
    expect(sidebar).to_have_count(2)
    expect(sidebar.first).to_contain_text("attached here")
    expect(sidebar.first).to_contain_text("recording")

    # the recording so far (flushed every second) plays back in the player
    page.goto("/terminals/recordings/")
    page.get_by_role("link", name="rig shell").first.click()
    player = page.locator("[data-player]")
    expect(player).to_have_attribute("data-ready", "", timeout=10_000)
    page.locator("[data-speed]").select_option("16")
    page.get_by_role("button", name="Play").click()
    expect(player).to_have_attribute("data-finished", "", timeout=30_000)
    # (what was typed before the reload: the file is flushed once a second)
    expect(player.locator(".xterm-rows")).to_contain_text(re.compile(r"pane\d-pid-\d+-4\d"))


def test_login_expiry_shows_expired_then_reattaches_after_sign_in(
    live_context: Any, org_a: OrgWorld, sshd: Sshd
) -> None:
    """The login goes (cookies cleared) and the socket is closed with 4401 (as the server does
    on an expired login): the page checks the login, finds it gone and says "Session expired —
    sign in" instead of retrying; after signing in, the same shell (same PID) comes back with
    its output, no new SSH session."""
    add_host(org_a, sshd)
    page = live_context.new_page()
    sockets: list[Any] = []

    def relay(ws: Any) -> None:  # a pass-through, so the test can close the page's side
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/terminals/"), relay)
    page.goto("/terminals/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page.locator("[data-terminals]")).to_have_attribute("data-ready", "")
    page.get_by_role("button", name="Open", exact=True).click()
    status = page.locator(".term-pane").first.locator("[data-pane-status]")
    expect(status).to_have_text("Attached", timeout=20_000)
    run(page, 0, "echo before-$$-$((5*5))")
    pid = wait_for_text(page, 0, r"before-(\d+)-25").group(1)

    live_context.clear_cookies()
    sockets[-1].close(code=4401, reason="login expired")
    expect(page.locator("[data-expired]")).to_be_visible(timeout=20_000)
    expect(page.locator("[data-expired]")).to_contain_text("Session expired")
    expect(status).to_have_text("Signed out")
    assert len(sockets) == 1  # no blind reconnects

    page.locator("[data-expired] a").click()
    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page).to_have_url(re.compile(r"/terminals/$"))
    expect(status).to_have_text("Attached", timeout=20_000)
    wait_for_text(page, 0, rf"before-{pid}-25")
    run(page, 0, "echo after-$$")
    assert wait_for_text(page, 0, r"after-(\d+)").group(1) == pid
    assert TerminalSession.unscoped.count() == 1
