"""The activity page: scoped, filtered, exportable, the switcher's site, the empty state."""

from __future__ import annotations

from accounts.actor import Actor
from accounts.models import ActivityEvent
from accounts.services import activity as activity_service
from tests.accounts.pages.support import HTMX, html, signed_in
from tests.conftest import OrgWorld


def test_activity_is_scoped_filtered_and_exportable(org_a: OrgWorld, org_b: OrgWorld) -> None:
    actor = Actor.system("tests")
    activity_service.activity_record(
        actor=actor, verb="site.update", org=org_a.org, site=org_a.sites[0]
    )
    activity_service.activity_record(actor=actor, verb="member.invite", org=org_a.org)
    activity_service.activity_record(actor=actor, verb="bravo.secret", org=org_b.org)
    client = signed_in(org_a.users["viewer"])
    everything = html(client.get("/activity/"))
    assert "site.update" in everything and "member.invite" in everything
    assert "bravo.secret" not in everything
    filtered = client.get("/activity/?verb=site", **HTMX)
    body = html(filtered)
    assert "<html" not in body
    assert "site.update" in body and "member.invite" not in body
    assert f"/api/v1/activity/export/?verb=site&amp;org={org_a.org.pk}" in body
    assert "No events match" in html(client.get("/activity/?verb=nothing"))
    assert "Some filters were ignored" in html(client.get("/activity/?since=yesterday-ish"))


def test_activity_defaults_to_the_switcher_site(org_a: OrgWorld) -> None:
    actor = Actor.system("tests")
    activity_service.activity_record(
        actor=actor, verb="at.site.one", org=org_a.org, site=org_a.sites[0]
    )
    activity_service.activity_record(
        actor=actor, verb="at.site.two", org=org_a.org, site=org_a.sites[1]
    )
    client = signed_in(org_a.users["owner"])
    client.post("/switch/", {"site": org_a.sites[0].pk, "next": "/activity/"})
    page = html(client.get("/activity/"))
    assert "at.site.one" in page and "at.site.two" not in page
    assert "at.site.two" in html(client.get("/activity/?site="))


def test_empty_activity_has_an_empty_state(org_a: OrgWorld) -> None:
    ActivityEvent.unscoped.all().delete()
    assert "No activity yet" in html(signed_in(org_a.users["owner"]).get("/activity/"))
