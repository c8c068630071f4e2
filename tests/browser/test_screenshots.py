"""A tour of every page in a seeded organization, in a real browser, saving screenshots.

Screenshots go to a temporary directory; with RIGWARDEN_SCREENSHOTS=docs/screenshots they
refresh the README's pictures. Console errors (CSP violations included) fail the tour.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import ApiToken, LoginMethod, LoginResult, Membership, Role, User
from accounts.permissions import BUILTIN_ROLES
from accounts.services import invitations, members, orgs, roles, security, tokens
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile Safari/604.1"
TEAM = [
    ("jonas.berg@hashbrook.example", "Jonas Berg", "admin"),
    ("ana.ruiz@hashbrook.example", "Ana Ruiz", "operator"),
    ("li.wei@hashbrook.example", "Li Wei", "operator"),
    ("sam.okafor@hashbrook.example", "Sam Okafor", "field_tech"),
    ("priya.nair@hashbrook.example", "Priya Nair", "viewer"),
    ("tom.becker@hashbrook.example", "Tom Becker", "field_tech"),
    ("finance@hashbrook.example", "", "viewer"),
]


def builtin(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org__isnull=True)


def seed() -> User:
    """An org as an operator would have it after a week, built through the services."""
    system = Actor.system("setup")
    org = orgs.org_create(actor=system, name="Hashbrook Mining", slug="hashbrook")
    sites = [
        orgs.site_create(actor=system, org=org, name=name, location=where)
        for name, where in (
            ("Reno Warehouse A", "Reno, NV"),
            ("Reno Warehouse B", "Reno, NV"),
            ("Tromsø Container 3", "Tromsø, NO"),
        )
    ]
    owner = members.user_create(
        actor=system, email="maya@hashbrook.example", password=PASSWORD, full_name="Maya Lindqvist"
    )
    members.membership_add(actor=system, org=org, user=owner, role=builtin("owner"))
    me = Actor.for_user(owner, "10.20.0.15")
    people = {}
    for i, (email, name, role) in enumerate(TEAM):
        user = members.user_create(actor=me, email=email, password=PASSWORD, full_name=name)
        members.membership_add(actor=me, org=org, user=user, role=builtin(role))
        User.objects.filter(pk=user.pk).update(
            last_login=timezone.now() - timedelta(hours=3 + 17 * i)
        )
        people[email.split(".")[0].split("@")[0]] = user
    invitations.member_invite(
        actor=me,
        org=org,
        email="new.hire@hashbrook.example",
        role=builtin("operator"),
        base_url="http://127.0.0.1/",
    )
    lead = roles.role_create(
        actor=me,
        org=org,
        name="Shift lead",
        description="Operators who may also see members and the activity log.",
        permissions=sorted(BUILTIN_ROLES["operator"][1] | {"miner:set_power_target"}),
    )
    members.membership_update(
        actor=me, membership=Membership.unscoped.get(user=people["li"], org=org), role=lead
    )
    members.site_role_assign(actor=me, site=sites[2], user=people["sam"], role=builtin("operator"))
    members.site_role_assign(
        actor=me, site=sites[0], user=people["priya"], role=builtin("field_tech")
    )
    exporter = tokens.api_token_create(actor=me, user=owner, name="grafana-exporter").token
    ApiToken.unscoped.filter(pk=exporter.pk).update(
        last_used_at=timezone.now() - timedelta(minutes=4), last_used_ip="10.20.0.40"
    )
    tokens.api_token_revoke(
        actor=me, token=tokens.api_token_create(actor=me, user=owner, name="ci-deploy").token
    )
    expiring = tokens.api_token_create(
        actor=me, user=owner, name="inventory-sync", expires_at=timezone.now() + timedelta(days=30)
    )
    ApiToken.unscoped.filter(pk=expiring.token.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    security.login_event_record(
        result=LoginResult.FAILURE, email=owner.email, ip="203.0.113.9", user_agent=FIREFOX
    )
    security.login_event_record(
        result=LoginResult.SUCCESS,
        user=owner,
        ip="10.20.0.31",
        user_agent=IPHONE,
        method=LoginMethod.PASSWORD,
    )
    security.session_track(session_key="s" * 32, user=owner, ip="10.20.0.31", user_agent=IPHONE)
    return owner


def shoot(page: Page, directory: Path, name: str) -> None:
    # caret="initial": Playwright's caret-hiding style is inline, which the CSP rightly blocks
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True, caret="initial")


def test_tour_of_every_page(page: Page, tmp_path: Path) -> None:
    directory = Path(os.environ.get("RIGWARDEN_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    owner = seed()

    page.goto("/accounts/login/")
    shoot(page, directory, "signin")
    sign_in(page, owner.email, PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Maya Lindqvist")).to_be_visible()
    page.locator(".alert [data-dismiss]").first.click()
    shoot(page, directory, "dashboard")

    page.goto("/users/")
    expect(page.locator("#invite").get_by_text("new.hire@hashbrook.example")).to_be_visible()
    page.get_by_label("Search").fill("ruiz")  # live search: htmx swaps the list, pushes the URL
    expect(page).to_have_url(re.compile(r"/users/\?q=ruiz"))
    expect(page.locator("#member-list tbody tr")).to_have_count(1)
    page.goto("/users/")
    shoot(page, directory, "users")

    page.goto("/roles/")
    expect(page.get_by_label("Name of the role Shift lead")).to_have_value("Shift lead")
    shoot(page, directory, "roles")

    page.goto("/tokens/")
    page.get_by_label("Name").fill("prometheus-scraper")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token “prometheus-scraper” created")).to_be_visible()
    shoot(page, directory, "tokens")

    page.goto("/security/")
    expect(page.get_by_text("This session", exact=True)).to_be_visible()
    shoot(page, directory, "security")

    page.goto("/activity/")
    expect(page.get_by_role("cell", name="member.invite").first).to_be_visible()
    shoot(page, directory, "activity")


def test_dark_theme_and_narrow_screens(page: Page, tmp_path: Path) -> None:
    directory = Path(os.environ.get("RIGWARDEN_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    owner = seed()
    page.emulate_media(color_scheme="dark")
    sign_in(page, owner.email, PASSWORD)
    assert page.evaluate("document.documentElement.dataset.resolvedTheme") == "dark"
    page.goto("/users/")
    shoot(page, directory, "users-dark")
    page.get_by_role("button", name="Switch between light and dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.reload()
    assert (
        page.evaluate("document.documentElement.dataset.resolvedTheme") == "light"
    )  # kept in localStorage

    page.set_viewport_size({"width": 390, "height": 844})
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_hidden()
    page.get_by_role("button", name="Show navigation").click()
    expect(nav.get_by_role("link", name="Activity")).to_be_visible()
    page.screenshot(path=str(directory / "mobile-nav.png"), caret="initial")
