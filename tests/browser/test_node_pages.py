"""Fleet-node pages in a real browser: add a node, see the command, confirm by fingerprint."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

from fleet.models import FleetNode, NodeStatus
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.fleet.nodes.support import GATEWAY, FakeNode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_add_a_node_then_confirm_it_by_fingerprint(page: Page, org_a: OrgWorld) -> None:
    sign_in(page, org_a.users["admin"].email, PASSWORD)
    page.goto("/nodes/")
    page.get_by_role("link", name="Add node").click()
    page.get_by_role("button", name="Create code").click()
    command = page.locator("[data-enroll-command]").inner_text()
    match = re.fullmatch(
        r"\S+ -m fleetnode --state-dir \S+ enroll --server (\S+) --code (rwe_\S+) --name \S+",
        command,
    )
    assert match is not None, command
    page.reload()  # PRG: a reload shows no code and mints none
    expect(page.locator("[data-enroll-command]")).to_have_count(0)
    expect(page.locator("[data-enroll-code-row]")).to_have_count(1)
    node = FakeNode()
    response = APIClient().post(f"{GATEWAY}/register", node.register_body(match[2]), format="json")
    assert response.status_code == 201
    page.goto("/nodes/")
    expect(page.get_by_text(node.fingerprint)).to_be_visible()  # pending, with its fingerprint
    page.get_by_role("link", name="node-1").click()
    page.get_by_label("Fingerprint printed by the node").fill("0000000000000000")
    page.get_by_role("button", name="Confirm node").click()
    expect(page.get_by_text("does not match")).to_be_visible()
    page.get_by_label("Fingerprint printed by the node").fill(node.fingerprint)
    page.get_by_role("button", name="Confirm node").click()
    expect(page.get_by_text("is confirmed")).to_be_visible()
    assert FleetNode.unscoped.get().status == NodeStatus.CONFIRMED
    page.get_by_role("button", name="Revoke node").click()  # the confirm dialog is accepted
    expect(page.get_by_text("is revoked")).to_be_visible()
    assert FleetNode.unscoped.get().status == NodeStatus.REVOKED
