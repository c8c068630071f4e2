"""The htmx-driven writes in a real browser: CSRF header, confirmations, fragment swaps."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import ApiToken, Membership, Role
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_invite_change_role_and_remove_a_member(page: Page, org_a: OrgWorld) -> None:
    page.goto("/users/")
    sign_in(page, "owner@alpha.example", PASSWORD)
    page.get_by_label("Email").fill("rookie@alpha.example")
    page.get_by_role("button", name="Invite").click()
    link = page.get_by_label("Invitation link")
    expect(link).to_have_value(re.compile(r"/invitations/accept/"))
    pending = page.locator("#invite tr", has_text="rookie@alpha.example")
    expect(pending).to_be_visible()
    assert not Membership.unscoped.filter(user__email="rookie@alpha.example").exists()

    row = page.locator("#member-list tr", has_text="viewer@alpha.example")
    row.get_by_label("Role of viewer@alpha.example").select_option(label="Operator")
    expect(page.locator("#messages")).to_contain_text("viewer@alpha.example is now Operator")
    membership = Membership.unscoped.get(user__email="viewer@alpha.example")
    assert membership.role.slug == "operator"

    # the only owner is offered no control that could only fail
    owner_row = page.locator("#member-list tr", has_text="owner@alpha.example")
    expect(owner_row.get_by_label("Role of owner@alpha.example")).to_have_count(0)
    expect(owner_row.get_by_role("button", name="Remove")).to_have_count(0)

    row.get_by_role("button", name="Remove").click()  # the confirm dialog is accepted
    expect(row).to_have_count(0)
    assert not Membership.unscoped.filter(pk=membership.pk).exists()


def test_token_and_role_matrix_writes(page: Page, org_a: OrgWorld) -> None:
    page.goto("/tokens/")
    sign_in(page, "admin@alpha.example", PASSWORD)
    page.get_by_label("Name").fill("grafana")
    page.get_by_label("Expires").select_option(label="In 90 days")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("New API token")).to_have_value(re.compile(r"^rw_"))
    page.get_by_role("row", name=re.compile("grafana")).get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row", name=re.compile("grafana"))).to_contain_text("Revoked")
    assert ApiToken.unscoped.get(name="grafana").revoked_at is not None

    page.goto("/roles/")
    page.get_by_label("Name", exact=True).fill("Night shift")
    page.get_by_label("Start from").select_option(label="Viewer")
    page.get_by_role("button", name="Create role").click()
    reboot = page.get_by_label("Night shift: miner:reboot")
    expect(reboot).not_to_be_checked()  # the matrix came back with the new column
    role = Role.unscoped.get(org=org_a.org, name="Night shift")
    reboot.check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved the role Night shift")
    role.refresh_from_db()
    assert "miner:reboot" in role.permissions and "user:read" in role.permissions
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_label("Night shift: miner:reboot")).to_have_count(0)
    assert not Role.unscoped.filter(pk=role.pk).exists()
