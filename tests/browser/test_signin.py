"""Sign-in, the app shell and TOTP enrollment through the real pages in a real browser."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import Page, expect

from accounts.models import LoginEvent, LoginMethod, LoginResult
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.support import totp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_lands_on_the_dashboard_shell(page: Page, live_server, org_a: OrgWorld) -> None:
    page.goto(f"{live_server.url}/users/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/users/")
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)
    sign_in(page, "admin@alpha.example", PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/users/")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Welcome, admin@alpha.example")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for item in ("Dashboard", "Users", "Roles", "API tokens", "Activity", "Security"):
        expect(nav.get_by_role("link", name=item)).to_be_visible()
    expect(page.locator(".scope-name")).to_have_text(org_a.org.name)
    assert page.evaluate("typeof window.htmx") == "object", (
        "static/vendor/htmx.min.js missing: npm ci && npm run vendor"
    )


def test_wrong_password_shows_a_clear_error(page: Page, live_server, org_a: OrgWorld) -> None:
    sign_in(page, "viewer@alpha.example", "not-the-password-1")
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def test_enroll_totp_then_sign_in_with_it(page: Page, live_server, org_a: OrgWorld) -> None:
    base = live_server.url
    sign_in(page, "operator@alpha.example", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    page.get_by_role("link", name="Set up an authenticator app").click()
    # allauth asks for the password again before changing MFA
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Activate authenticator app")).to_be_visible()
    secret = page.locator("#authenticator_secret").input_value()
    activated_at = time.time()
    page.get_by_label("Authenticator code").fill(totp(secret, activated_at))
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("heading", name="Recovery Codes")).to_be_visible()
    assert Authenticator.objects.filter(
        user=org_a.users["operator"], type=Authenticator.Type.TOTP
    ).exists()

    page.locator("details.menu > summary").click()  # the user menu
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base}/accounts/login/")

    sign_in(page, "operator@alpha.example", PASSWORD)
    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    # a code is good once: wait for the next 30-second step after the one used to activate
    while int(time.time() // 30) == int(activated_at // 30):
        time.sleep(0.5)
    page.get_by_label("Code", exact=True).fill(totp(secret))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, operator@alpha.example")).to_be_visible()
    assert LoginEvent.objects.filter(
        user=org_a.users["operator"], result=LoginResult.SUCCESS, method=LoginMethod.MFA
    ).exists()
