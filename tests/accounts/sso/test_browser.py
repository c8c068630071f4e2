"""Single sign-on end to end: headless Chromium, this server, and a real OpenID provider
(npm ``oidc-provider``) on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect

from accounts.models import (
    ActivityEvent,
    LoginEvent,
    LoginMethod,
    LoginResult,
    Membership,
    Role,
    SsoIdentity,
    SsoRoleMapping,
    SsoSeatLimit,
    User,
)
from tests.accounts.sso.conftest import Provider, point_at
from tests.browser.conftest import browser, sign_in  # noqa: F401  (the module's Chromium)
from tests.conftest import PASSWORD, OrgWorld

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _loopback_only(route: Route) -> None:
    host = urlsplit(route.request.url).hostname or ""
    if host == "localhost" or host.startswith("127."):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Browser, live_server: Any, isolated_cache: None) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=live_server.url)
    context.route("**/*", _loopback_only)  # nothing leaves the machine, whatever a page asks
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # refusals are pages with 403/502/503 statuses, which Chromium also logs as errors
        expected = "/oidc/" in message.location.get("url", "") and "status of" in message.text
        if message.type == "error" and not expected:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert not problems, f"browser console errors: {problems}"


def role(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org__isnull=True)


def map_group(world: OrgWorld, value: str, slug: str) -> SsoRoleMapping:
    return SsoRoleMapping.unscoped.create(
        org=world.org, claim="groups", value=value, role=role(slug)
    )


def sso_sign_in(page: Page, login: str, *, next_path: str = "") -> None:
    page.goto(f"/accounts/login/{'?next=' + next_path if next_path else ''}")
    page.get_by_role("link", name="Sign in with SSO").click()
    expect(page.get_by_role("heading", name="Sign in to the test provider")).to_be_visible()
    page.get_by_label("Username").fill(login)
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Continue").click()


def session_of(page: Page) -> Any:
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    return import_module(django_settings.SESSION_ENGINE).SessionStore(session_key=key)


def test_sso_sign_in_lands_with_the_mapped_role(
    page: Page, live_server: Any, sso: Provider, org_a: OrgWorld
) -> None:
    user = org_a.users["viewer"]
    map_group(org_a, "fleet-ops", "operator")
    sso.set_user("vic", email=user.email, email_verified=True, groups=["fleet-ops"])
    page.goto("/accounts/login/")
    expect(page.get_by_label("Password")).to_be_visible()  # the password form stays beside it
    sso_sign_in(page, "vic", next_path="/users/")
    expect(page).to_have_url(f"{live_server.url}/users/")
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "operator"
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (sso.issuer, "sub-vic")
    event = LoginEvent.objects.get(user=user, result=LoginResult.SUCCESS)
    assert (event.method, event.sso_issuer, event.sso_subject) == (
        LoginMethod.SSO,
        sso.issuer,
        "sub-vic",
    )


def test_without_jit_an_unknown_person_gets_a_clear_refusal(
    page: Page, sso: Provider, org_a: OrgWorld
) -> None:
    map_group(org_a, "fleet-ops", "operator")
    sso.set_user("newbie", email="newbie@alpha.example", email_verified=True, groups=["fleet-ops"])
    sso_sign_in(page, "newbie")
    expect(page.get_by_role("alert")).to_contain_text(
        "There is no account here for newbie@alpha.example"
    )
    assert not User.objects.filter(email="newbie@alpha.example").exists()


def test_with_jit_a_new_person_gets_an_account_and_no_role_means_a_clear_page(
    page: Page, live_server: Any, settings: Any, sso: Provider, org_a: OrgWorld
) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "fleet-ops", "viewer")
    sso.set_user("newbie", email="newbie@alpha.example", email_verified=True, groups=["fleet-ops"])
    sso.set_user("stranger", email="stranger@alpha.example", email_verified=True, groups=["sales"])
    sso_sign_in(page, "newbie")
    expect(page).to_have_url(f"{live_server.url}/")
    newbie = User.objects.get(email="newbie@alpha.example")
    assert Membership.unscoped.get(user=newbie, org=org_a.org).role.slug == "viewer"
    page.context.clear_cookies()
    sso_sign_in(page, "stranger")
    expect(page.get_by_role("heading", name="No role for you here yet")).to_be_visible()
    expect(page.get_by_text("sales")).to_be_visible()
    assert not User.objects.filter(email="stranger@alpha.example").exists()


def test_a_mapping_change_applies_at_the_next_sign_in_and_sign_out_ends_the_provider_session(
    page: Page, live_server: Any, sso: Provider, org_a: OrgWorld
) -> None:
    user = org_a.users["viewer"]
    rule = map_group(org_a, "fleet-ops", "operator")
    sso.set_user("vic", email=user.email, email_verified=True, groups=["fleet-ops"])
    sso_sign_in(page, "vic")
    expect(page).to_have_url(f"{live_server.url}/")
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "operator"
    rule.delete()
    map_group(org_a, "fleet-ops", "field_tech")
    # RP-initiated logout: signed out here, then at the provider
    page.locator("details.menu > summary").click()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(re.compile(rf"{live_server.url}/accounts/login/"))
    # the provider forgot us: it asks who we are again, and the new rule is what counts
    sso_sign_in(page, "vic")
    expect(page).to_have_url(f"{live_server.url}/")
    assert Membership.unscoped.get(user=user, org=org_a.org).role.slug == "field_tech"


def test_the_seat_limit_stops_a_new_member_with_a_message_and_an_audit_event(
    page: Page, settings: Any, sso: Provider, org_a: OrgWorld
) -> None:
    settings.OIDC_JIT = True
    map_group(org_a, "fleet-ops", "viewer")
    SsoSeatLimit.unscoped.create(org=org_a.org, seats=5)  # the five members already there
    sso.set_user("newbie", email="newbie@alpha.example", email_verified=True, groups=["fleet-ops"])
    sso_sign_in(page, "newbie")
    expect(page.get_by_role("heading", name="No seat left")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("has used all 5 of its seats")
    assert ActivityEvent.unscoped.filter(org=org_a.org, verb="sso.seat_limit").exists()


def test_the_session_is_revalidated_silently_and_xhr_gets_a_json_401(
    page: Page, live_server: Any, sso: Provider, org_a: OrgWorld
) -> None:
    user = org_a.users["admin"]
    sso.set_user("ada", email=user.email, email_verified=True)
    sso_sign_in(page, "ada")
    expect(page).to_have_url(f"{live_server.url}/")
    store = session_of(page)
    store["oidc_id_token_expiration"] = time.time() - 1  # the ID token is due
    store.save()
    response = page.context.request.get(
        "/users/", headers={"X-Requested-With": "XMLHttpRequest"}, max_redirects=0
    )
    assert response.status == 401
    body = response.json()
    assert body["code"] == "reauthenticate"
    assert body["reauth_url"].startswith("/oidc/authenticate/?next=")
    page.goto("/users/")  # a page: a silent prompt=none round trip, no form shown
    expect(page).to_have_url(f"{live_server.url}/users/")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert session_of(page)["oidc_id_token_expiration"] > time.time()


def test_an_unverified_email_does_not_link_and_a_disabled_user_is_refused(
    page: Page, sso: Provider, org_a: OrgWorld
) -> None:
    owner = org_a.users["owner"]
    sso.set_user("mallory", email=owner.email, email_verified=False)
    sso_sign_in(page, "mallory")
    expect(page.get_by_role("alert")).to_contain_text("hasn't verified that address")
    assert not SsoIdentity.objects.exists()
    operator = org_a.users["operator"]
    SsoIdentity.objects.create(user=operator, issuer=sso.issuer, subject="sub-otto")
    User.objects.filter(pk=operator.pk).update(is_active=False)
    sso.set_user("otto", email=operator.email, email_verified=True)
    page.context.clear_cookies()
    sso_sign_in(page, "otto")
    expect(page.get_by_role("alert")).to_contain_text("This account is disabled here.")


def test_a_misconfigured_client_is_a_clear_page_not_a_sign_in(
    page: Page, settings: Any, sso: Provider, org_a: OrgWorld
) -> None:
    sso.set_user("ada", email=org_a.users["admin"].email, email_verified=True)
    settings.OIDC_CLIENT_SECRET = "not-the-secret-the-provider-knows"
    sso_sign_in(page, "ada")
    expect(page.get_by_role("heading", name="Single sign-on isn't working")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("check OIDC_CLIENT_ID, OIDC_CLIENT_SECRET")
    assert "sessionid" not in {c["name"] for c in page.context.cookies()} or not (
        session_of(page).get("_auth_user_id")
    )


def test_break_glass_the_local_owner_signs_in_while_the_provider_is_down(
    page: Page, live_server: Any, settings: Any, org_a: OrgWorld
) -> None:
    point_at(settings, "http://127.0.0.2:9")  # nothing listens there
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with SSO").click()
    expect(page.get_by_role("heading", name="Single sign-on isn't working")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("can't be reached")
    sign_in(page, org_a.users["owner"].email, PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/")
    expect(
        page.get_by_role("heading", name=f"Welcome, {org_a.users['owner'].email}")
    ).to_be_visible()


def test_a_provider_session_that_ended_signs_the_person_out_here_at_revalidation(
    page: Page, live_server: Any, sso: Provider, org_a: OrgWorld
) -> None:
    user = org_a.users["admin"]
    sso.set_user("ada", email=user.email, email_verified=True)
    sso_sign_in(page, "ada")
    expect(page).to_have_url(f"{live_server.url}/")
    page.context.clear_cookies(domain="127.0.0.2")  # the provider forgot the session
    store = session_of(page)
    store["oidc_id_token_expiration"] = time.time() - 1
    store.save()
    page.goto("/users/")  # prompt=none comes back with login_required
    expect(page).to_have_url(re.compile(rf"{live_server.url}/accounts/login/"))
    expect(page.get_by_text("Your single sign-on session has ended")).to_be_visible()
    assert page.context.request.get("/users/", max_redirects=0).status == 302
