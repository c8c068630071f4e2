"""The fleet-nodes page follows ``/ws/live/``: a node's hello turns its row online, its stream
closing turns it stale, a revoke shows at once — and another org's page gets none of it.

A real daphne (``asgi_server`` of test_live_pages) serves the pages and the control stream; the
node is a raw WebSocket client (no agent code), the browsers are Chromium.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from rest_framework.test import APIClient
from websockets.sync.client import ClientConnection, connect

from tests.browser.conftest import sign_in
from tests.browser.test_fleet_pages import off_loop
from tests.browser.test_live_pages import asgi_server, live_open
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.nodes.support import FakeNode, enroll, session_token

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
__all__ = ["asgi_server"]  # the fixture, used by name


@pytest.fixture
def contexts(browser: Browser, asgi_server: str) -> Iterator[list[BrowserContext]]:
    """Two browser contexts (two signed-in people) on the daphne server."""
    made = [browser.new_context(base_url=asgi_server) for _ in range(2)]
    yield made
    for context in made:
        context.close()


def _open_nodes_page(context: BrowserContext, email: str) -> tuple[Page, list[dict[str, Any]]]:
    """/nodes/ signed in as ``email``, once its live socket is open; and every frame it gets."""
    page = context.new_page()
    frames: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", on_socket)
    page.goto("/nodes/")
    sign_in(page, email, PASSWORD)
    expect(page.get_by_role("heading", name="Fleet nodes")).to_be_visible()
    live_open(page)
    return page, frames


@contextlib.contextmanager
def _stream(base: str, node: FakeNode) -> Iterator[ClientConnection]:
    """The node's control stream, through hello → welcome; closed on leaving."""
    url = base.replace("http://", "ws://") + "/ws/nodes/control/"
    headers = {"Authorization": f"Bearer {session_token(node)}"}
    with connect(url, additional_headers=headers) as ws:
        ws.send(json.dumps(node.hello(agent_version="2.5.0")))
        while json.loads(ws.recv(timeout=10))["type"] != "welcome":
            pass
        yield ws


def _node_frames(frames: list[dict[str, Any]], node_id: int) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == "node" and f["node"]["id"] == node_id]


def test_the_nodes_page_follows_node_state_and_other_orgs_see_nothing(
    contexts: list[BrowserContext], asgi_server: str, org_a: OrgWorld, org_b: OrgWorld
) -> None:
    ours, theirs = enroll(org_a.users["admin"]), enroll(org_b.users["admin"])
    page, frames = _open_nodes_page(contexts[0], org_a.users["admin"].email)
    other, other_frames = _open_nodes_page(contexts[1], org_b.users["admin"].email)
    row = page.locator(f'tr[data-live-node="{ours.node_id}"]')
    state = row.locator('[data-node-field="state"]')
    expect(state).to_have_text("Offline")  # enrolled, never connected

    with _stream(asgi_server, ours):
        expect(state).to_have_text("Online")  # no reload: the hello published it
        expect(row.locator('[data-node-field="version"]')).to_have_text("2.5.0")
        expect(row.locator('[data-node-field="last_seen"] time')).to_have_text("now")
    expect(state).to_have_text("Stale")  # its stream closed; heard from a moment ago

    def revoke() -> Any:
        admin = APIClient()
        admin.force_authenticate(org_a.users["admin"])
        return admin.post(f"/api/v1/fleet-nodes/{ours.node_id}/revoke", {}, format="json")

    response = off_loop(revoke)  # the publisher refuses Playwright's loop thread
    assert response.status_code == 200, response.content
    expect(row.locator('[data-node-field="status"]')).to_have_text("Revoked")
    expect(state).to_have_text("Revoked")
    assert {f["node"]["state"] for f in _node_frames(frames, ours.node_id)} >= {
        "online",
        "stale",
        "revoked",
    }

    # org b's page follows its own node; everything of org a's was published before this, so
    # had org b's socket been in org a's group those frames would have arrived first
    their_state = other.locator(f'tr[data-live-node="{theirs.node_id}"] [data-node-field="state"]')
    with _stream(asgi_server, theirs):
        pass
    expect(their_state).to_have_text("Stale")
    assert _node_frames(other_frames, theirs.node_id)
    assert _node_frames(other_frames, ours.node_id) == []
    assert other.locator(f'tr[data-live-node="{ours.node_id}"]').count() == 0
    # and org a never heard of org b's node
    assert _node_frames(frames, theirs.node_id) == []
