"""Dead ends a reviewer hit on the pages: Add miner (and discovery) in an org with no sites, the
demo simulators' password, pool passwords shown in clear, Manual cooling without a speed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.models import Site
from fleet.actions import ACTIONS, ActionError
from tests.accounts.pages.support import HTMX, assert_csp_clean, html, signed_in
from tests.conftest import OrgWorld

pytestmark = pytest.mark.django_db
SITE_SELECT = re.compile(r'<select[^>]*name="site"')


@pytest.fixture
def siteless(org_a: OrgWorld) -> OrgWorld:
    Site.unscoped.filter(org=org_a.org).delete()
    return org_a


def _dialog(body: str) -> str:
    return body.split('<dialog id="add-miner"')[1].split("</dialog>")[0]


def test_add_miner_without_sites_says_to_create_one_with_the_link(siteless: OrgWorld) -> None:
    owner = signed_in(siteless.users["owner"])
    listing = owner.get("/miners/")
    assert listing.status_code == 200
    assert_csp_clean(listing)
    dialog = _dialog(html(listing))
    assert "Create a site first" in dialog and 'href="/sites/"' in dialog
    assert not SITE_SELECT.search(dialog) and "Add miner</button>" not in dialog
    page = html(owner.get("/miners/add/"))
    assert "Create a site first" in page and 'href="/sites/"' in page
    assert not SITE_SELECT.search(page.split("<main")[1])
    # a post anyway (a stale form) gets the same way out, not "Site: This field is required."
    for extra in ({}, HTMX):
        posted = owner.post("/miners/add/", {"host": "10.0.0.5"}, **extra)
        assert posted.status_code == 400
        assert "Create a site first" in html(posted) and "This field is required" not in html(
            posted
        )


def test_without_site_management_the_empty_state_says_who_can(siteless: OrgWorld) -> None:
    dialog = _dialog(html(signed_in(siteless.users["operator"]).get("/miners/")))
    assert "Create a site first" in dialog and "Ask an owner or admin" in dialog
    assert "Create a site</a>" not in dialog


def test_an_org_with_sites_gets_the_form(org_a: OrgWorld, org_b: OrgWorld) -> None:
    Site.unscoped.filter(org=org_b.org).delete()  # another org's lack of sites is not ours
    dialog = _dialog(html(signed_in(org_a.users["owner"]).get("/miners/")))
    assert SITE_SELECT.search(dialog) and "Create a site first" not in dialog
    for site in org_a.sites:
        assert f">{site.name}</option>" in dialog


def test_discovery_without_sites_says_to_create_one(siteless: OrgWorld, org_b: OrgWorld) -> None:
    body = html(signed_in(siteless.users["owner"]).get("/discovery/"))
    assert "data-discovery-no-sites" in body and 'href="/sites/"' in body
    assert 'id="discovery-site"' not in body
    other = html(signed_in(org_b.users["owner"]).get("/discovery/"))
    assert 'id="discovery-site"' in other and "data-discovery-no-sites" not in other


def test_the_demo_tells_the_simulators_password_and_nothing_else_does(
    org_a: OrgWorld, settings: Any
) -> None:
    owner = signed_in(org_a.users["owner"])
    settings.DEMO_SIM_PASSWORD = ""
    for url in ("/discovery/", "/miners/", "/miners/add/"):
        assert "data-demo-sim-password" not in html(owner.get(url)), url
    settings.DEMO_SIM_PASSWORD = "rigwarden-sim-1"
    for url in ("/discovery/", "/miners/", "/miners/add/"):
        body = html(owner.get(url))
        assert "data-demo-sim-password" in body and "<code>rigwarden-sim-1</code>" in body, url


def test_the_demo_launcher_passes_the_simulators_password_on() -> None:
    from fleet.demo.launcher import sim_password

    same = [{"password": "rigwarden-sim-1"}, {"password": "rigwarden-sim-1"}]
    assert sim_password(same) == "rigwarden-sim-1"
    assert sim_password([{"password": "a"}, {"password": "b"}]) == ""
    assert sim_password([]) == ""


def test_pool_passwords_are_masked_everywhere(org_a: OrgWorld) -> None:
    from tests.fleet.support import make_miners

    (miner,) = make_miners(org_a, 1)
    owner = signed_in(org_a.users["owner"])
    pages = [html(owner.get("/miners/")), html(owner.get(f"/miners/{miner.pk}/"))]
    fields = [
        f for body in pages for f in re.findall(r"<input[^>]*pools\.\d\.password[^>]*>", body)
    ]
    assert fields, "the pools panels have password fields"
    for field in fields:
        assert 'type="password"' in field and 'autocomplete="new-password"' in field, field


def test_manual_cooling_needs_a_speed() -> None:
    action = ACTIONS["set_cooling"]
    with pytest.raises(ActionError) as refused:
        action.clean({"mode": "manual"})
    assert "speed_percent" in refused.value.errors
    assert action.clean({"mode": "manual", "speed_percent": 60})["speed_percent"] == 60
    assert action.clean({"mode": "auto"})["speed_percent"] is None


def test_the_live_view_action_refuses_manual_without_a_speed(org_a: OrgWorld) -> None:
    from tests.fleet.support import make_miners

    (miner,) = make_miners(org_a, 1)
    response = signed_in(org_a.users["owner"]).post(
        f"/api/v1/miners/{miner.pk}/actions/set_cooling/",
        {"mode": "manual"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "fan speed" in str(response.json().get("speed_percent")), response.json()
