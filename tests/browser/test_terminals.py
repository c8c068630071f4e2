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


def stty_size(page: Page, index: int, tag: str) -> tuple[int, int]:
    """The size of pane ``index``'s terminal as the remote shell sees it: (rows, columns)."""
    run(page, index, f"echo {tag}-$(stty size | tr ' ' x)-end")
    found = wait_for_text(page, index, rf"{tag}-(\d+)x(\d+)-end")
    return int(found.group(1)), int(found.group(2))


def widths(page: Page) -> list[float]:
    boxes = [page.locator(".term-pane").nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1]
    return [boxes[0]["width"], boxes[1]["width"]]


def test_splitter_resizes_the_panes_and_the_remote_terminal(
    live_context: Any, org_a: OrgWorld, sshd: Sshd, tmp_path: Path
) -> None:
    """Two panes side by side: dragging the handle between them widens the left one and the
    shell sees the new size (stty); arrow keys move it too; the sizes survive a reload; a
    double-click makes the columns equal again, and so does another column count."""
    add_host(org_a, sshd)
    page = live_context.new_page()
    page.goto("/terminals/")
    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page.locator("[data-terminals]")).to_have_attribute("data-ready", "")
    for _ in range(2):
        page.get_by_role("button", name="Open", exact=True).click()
    expect(page.locator(".term-pane")).to_have_count(2)
    for i in range(2):
        expect(page.locator(".term-pane").nth(i).locator("[data-pane-status]")).to_have_text(
            "Attached", timeout=20_000
        )
    visible = page.locator(".term-grid:not([hidden])")
    split = visible.get_by_role("separator", name="Resize columns 1 and 2")
    expect(split).to_have_attribute("aria-orientation", "vertical")
    expect(split).to_have_attribute("aria-valuenow", "50")
    expect(visible.locator("[role=separator][aria-orientation=horizontal]")).to_have_count(0)
    before = widths(page)
    assert abs(before[0] - before[1]) < 2
    cols_before = [stty_size(page, i, f"before{i}")[1] for i in range(2)]

    box = split.bounding_box()
    assert box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 240, y, steps=12)
    page.mouse.up()
    after = widths(page)
    assert after[0] > before[0] + 220 and after[1] < before[1] - 220
    assert int(split.get_attribute("aria-valuenow") or 0) > 60
    cols_after = [stty_size(page, i, f"after{i}")[1] for i in range(2)]
    assert cols_after[0] > cols_before[0] + 15  # the remote terminal got wider
    assert cols_after[1] < cols_before[1] - 15
    page.mouse.move(x + 240, y)  # the handle shows under the pointer
    page.screenshot(path=str(shots(tmp_path) / "terminals-splitter.png"), caret="initial")

    # a finger: touch events become pointer events (the handle has touch-action: none)
    cdp = live_context.new_cdp_session(page)
    box = split.bounding_box()
    assert box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for kind, dx in (("touchStart", 0), ("touchMove", -40), ("touchMove", -80), ("touchEnd", -80)):
        points = [] if kind == "touchEnd" else [{"x": x + dx, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    touched = widths(page)
    assert abs(touched[0] - (after[0] - 80)) < 2

    split.focus()
    page.keyboard.press("ArrowLeft")  # 16 px
    keyed = widths(page)
    assert abs(keyed[0] - (touched[0] - 16)) < 2

    page.reload()
    expect(page.locator("[data-terminals]")).to_have_attribute("data-ready", "")
    expect(page.locator(".term-pane")).to_have_count(2)
    for i in range(2):
        expect(page.locator(".term-pane").nth(i).locator("[data-pane-status]")).to_have_text(
            "Attached", timeout=20_000
        )
    reloaded = widths(page)
    assert all(abs(a - b) < 2 for a, b in zip(reloaded, keyed, strict=True))
    assert stty_size(page, 0, "reloaded")[1] < cols_after[0]  # the 16 px the key took

    split.dblclick()  # equal again
    expect(split).to_have_attribute("aria-valuenow", "50")
    equal = widths(page)
    assert abs(equal[0] - equal[1]) < 2
    assert stty_size(page, 0, "equal")[1] == cols_before[0]
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('rw.terminals.v1'))")
    assert "colSizes" not in stored["tabs"][0]  # equal: the shape of a layout stored before

    # another column count: one column of two rows, a handle between the rows, and the
    # column widths (2 columns) no longer apply
    split.focus()
    page.keyboard.press("End")
    assert widths(page)[1] < 200  # down to the minimum
    page.locator("[data-columns]").select_option("1")
    expect(visible.locator("[role=separator]")).to_have_count(1)
    row_split = visible.get_by_role("separator", name="Resize rows 1 and 2")
    expect(row_split).to_have_attribute("aria-orientation", "horizontal")
    tops = [page.locator(".term-pane").nth(i).bounding_box() for i in range(2)]
    box = row_split.bounding_box()
    assert tops[0] and tops[1] and box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 100, steps=5)
    page.mouse.up()
    taller = page.locator(".term-pane").first.bounding_box()
    assert taller and abs(taller["height"] - (tops[0]["height"] + 100)) < 2
    page.locator("[data-columns]").select_option("auto")
    expect(split).to_have_attribute("aria-valuenow", "50")

    # a stored layout with sizes that don't fit is drawn with equal columns
    page.evaluate(
        "const s = JSON.parse(sessionStorage.getItem('rw.terminals.v1'));"
        "s.tabs[0].colSizes = [0.9, 'x']; s.tabs[0].rowSizes = 7;"
        "sessionStorage.setItem('rw.terminals.v1', JSON.stringify(s));"
    )
    page.reload()
    expect(page.locator(".term-pane")).to_have_count(2)
    expect(split).to_have_attribute("aria-valuenow", "50")
