"""The org's poll interval: the service (authorization, audit, bad values), the API and the
page, across two orgs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from accounts.actor import Actor
from accounts.errors import ApplicationError, Forbidden
from accounts.models import ActivityEvent, Membership, Role
from fleet.models import FleetSettings
from fleet.services.fleet_settings import fleet_settings_update, poll_intervals
from tests.accounts.pages.support import HTMX, assert_csp_clean, html, signed_in
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.poll_support import due_miner

URL = "/api/v1/fleet/settings/"


# --- the service ------------------------------------------------------------------------------
def test_an_owner_sets_the_interval_and_it_is_audited(org_a: OrgWorld, org_b: OrgWorld) -> None:
    owner = Actor.for_user(org_a.users["owner"])
    row = fleet_settings_update(actor=owner, org=org_a.org, poll_interval_s=30)
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == row.poll_interval_s == 30
    event = ActivityEvent.unscoped.get(verb="fleet_settings.update", result="ok")
    assert event.org_id == org_a.org.pk
    assert event.details == {"poll_interval_s": {"from": 10, "to": 30}}
    assert poll_intervals([org_a.org.pk, org_b.org.pk]) == {
        org_a.org.pk: dt.timedelta(seconds=30),
        org_b.org.pk: dt.timedelta(seconds=10),  # no row: the deployment's default
    }


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_only_org_manage_may_change_it(org_a: OrgWorld, role: str) -> None:
    with pytest.raises(Forbidden):
        fleet_settings_update(
            actor=Actor.for_user(org_a.users[role]), org=org_a.org, poll_interval_s=30
        )
    assert not FleetSettings.unscoped.exists()
    assert ActivityEvent.unscoped.filter(verb="fleet_settings.update", result="denied").exists()


def test_another_orgs_owner_cannot_change_it(org_a: OrgWorld, org_b: OrgWorld) -> None:
    with pytest.raises(Forbidden):
        fleet_settings_update(
            actor=Actor.for_user(org_b.users["owner"]), org=org_a.org, poll_interval_s=30
        )
    assert not FleetSettings.unscoped.exists()


@pytest.mark.parametrize("value", [0, 1, 3601, -5, True, "10", 10.5, None])
def test_bad_intervals_are_refused(org_a: OrgWorld, value: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        fleet_settings_update(
            actor=Actor.for_user(org_a.users["owner"]), org=org_a.org, poll_interval_s=value
        )
    assert "poll_interval_s" in caught.value.errors
    assert not FleetSettings.unscoped.exists()


def test_a_shorter_interval_does_not_wait_out_the_longer_one(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    owner = Actor.for_user(org_a.users["owner"])
    fleet_settings_update(actor=owner, org=org_a.org, poll_interval_s=3600)
    later = timezone.now() + dt.timedelta(minutes=50)
    mine, theirs = due_miner(org_a, 1, later), due_miner(org_b, 2, later)
    fleet_settings_update(actor=owner, org=org_a.org, poll_interval_s=5)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.next_poll_at <= timezone.now() + dt.timedelta(seconds=5)
    assert theirs.next_poll_at == later  # another org's miners are untouched


# --- the API ------------------------------------------------------------------------------------
def test_the_api_reads_the_default_then_the_orgs_own(org_a: OrgWorld) -> None:
    viewer = api_client_for(org_a.users["viewer"])
    body = viewer.get(URL).json()
    assert body == {
        "org": org_a.org.pk, "poll_interval_s": 10, "default_poll_interval_s": 10,
        "is_default": True, "updated_at": None,
    }  # fmt: skip
    owner = api_client_for(org_a.users["owner"])
    response = owner.put(URL, {"poll_interval_s": 45}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["poll_interval_s"] == 45 and response.json()["is_default"] is False
    assert owner.patch(URL, {"poll_interval_s": 60}, format="json").json()["poll_interval_s"] == 60
    assert viewer.get(URL).json()["poll_interval_s"] == 60
    assert viewer.put(URL, {"poll_interval_s": 5}, format="json").status_code == 403
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == 60


@pytest.mark.parametrize(
    "body",
    [{"poll_interval_s": 1}, {"poll_interval_s": 3601}, {"poll_interval_s": "abc"},
     {"poll_interval_s": None}, {"poll_interval_s": 10.5}, {"poll_interval_s": True}, {}],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(org_a: OrgWorld, body: dict[str, Any]) -> None:
    response = api_client_for(org_a.users["owner"]).put(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert "poll_interval_s" in response.json()
    assert not FleetSettings.unscoped.exists()


def test_two_orgs_are_isolated(org_a: OrgWorld, org_b: OrgWorld) -> None:
    FleetSettings.unscoped.create(org=org_a.org, poll_interval_s=77)
    b_owner = api_client_for(org_b.users["owner"])
    assert b_owner.get(URL).json()["poll_interval_s"] == 10  # B's own: the default
    # A's id is not a choice for B (the same 400 as an id that doesn't exist)
    assert b_owner.get(URL, {"org": org_a.org.pk}).status_code == 400
    assert b_owner.get(URL, {"org": 10**12}).status_code == 400
    put = b_owner.put(URL, {"org": org_a.org.pk, "poll_interval_s": 5}, format="json")
    assert put.status_code == 400 and "org" in put.json()
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == 77
    assert b_owner.get(URL).json()["poll_interval_s"] == 10


def test_a_member_of_two_orgs_names_the_org(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person = org_a.users["owner"]
    Membership.unscoped.create(
        user=person, org=org_b.org, role=Role.unscoped.get(slug="owner", org=None)
    )
    client = api_client_for(person)
    assert client.get(URL).status_code == 400
    assert client.get(URL, {"org": org_b.org.pk}).json()["org"] == org_b.org.pk
    client.patch(URL, {"org": org_b.org.pk, "poll_interval_s": 20}, format="json")
    assert FleetSettings.unscoped.get().org_id == org_b.org.pk


# --- the page ------------------------------------------------------------------------------------
def test_the_page_shows_the_interval_and_an_owner_changes_it(org_a: OrgWorld) -> None:
    owner = signed_in(org_a.users["owner"])
    page = owner.get("/fleet/settings/")
    assert (
        page.status_code == 200 and "10 s" in html(page) and 'name="poll_interval_s"' in html(page)
    )
    assert_csp_clean(page)
    assert 'href="/fleet/settings/"' in html(owner.get("/fleet/"))  # linked from the fleet page
    saved = owner.post("/fleet/settings/save/", {"poll_interval_s": "25"})
    assert saved.status_code == 302
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == 25
    assert "25 s" in html(owner.get("/fleet/settings/"))
    bad = owner.post("/fleet/settings/save/", {"poll_interval_s": "1"}, **HTMX)
    assert bad.status_code == 200 and "greater than or equal to 2" in html(bad)
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == 25


def test_the_page_for_other_roles_and_orgs(org_a: OrgWorld, org_b: OrgWorld) -> None:
    FleetSettings.unscoped.create(org=org_a.org, poll_interval_s=77)
    viewer = signed_in(org_a.users["viewer"])
    page = html(viewer.get("/fleet/settings/"))
    assert "77 s" in page and 'name="poll_interval_s"' not in page
    assert viewer.post("/fleet/settings/save/", {"poll_interval_s": "5"}).status_code == 403
    admin = signed_in(org_a.users["admin"])
    assert admin.post("/fleet/settings/save/", {"poll_interval_s": "5"}).status_code == 403
    b_owner = signed_in(org_b.users["owner"])
    page_b = html(b_owner.get("/fleet/settings/"))
    assert "77 s" not in page_b and "10 s" in page_b and org_a.org.name not in page_b
    assert b_owner.post("/fleet/settings/save/", {"poll_interval_s": "5"}).status_code == 302
    assert FleetSettings.unscoped.get(org=org_a.org).poll_interval_s == 77
    assert FleetSettings.unscoped.get(org=org_b.org).poll_interval_s == 5
