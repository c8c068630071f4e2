"""Every write leaves an activity event (actor, org, target); the log filters and exports safely."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.models import ActivityEvent, ApiToken, Membership, Role, Site, User
from accounts.services.activity import activity_record
from accounts.services.tokens import api_token_create
from tests.conftest import OrgWorld, api_client_for, make_user


@dataclass(frozen=True)
class Write:
    verb: str
    method: str
    url: Callable[[OrgWorld], str]
    data: Callable[[OrgWorld], dict[str, Any]] = lambda w: {}
    target_type: str = ""


def _extra(world: OrgWorld) -> User:
    return User.objects.get_or_create(email="extra@alpha.example")[0]


def _custom_role(world: OrgWorld) -> Role:
    return Role.unscoped.get_or_create(
        org=world.org, slug="racker", defaults={"name": "Racker", "permissions": ["site:read"]}
    )[0]


def _member(world: OrgWorld) -> Membership:
    return Membership.unscoped.get(org=world.org, user=world.users["field_tech"])


def _token(world: OrgWorld) -> ApiToken:
    user = world.users["field_tech"]
    return api_token_create(actor=Actor.system("setup"), user=user, name="t").token


WRITES = [
    Write(
        "org.update",
        "patch",
        lambda w: f"/api/v1/orgs/{w.org.pk}/",
        lambda w: {"name": "Alpha Mining"},
        "organization",
    ),
    Write(
        "site.create",
        "post",
        lambda w: "/api/v1/sites/",
        lambda w: {"org": w.org.pk, "name": "Hall C"},
        "site",
    ),
    Write(
        "site.update",
        "patch",
        lambda w: f"/api/v1/sites/{w.sites[0].pk}/",
        lambda w: {"location": "North"},
        "site",
    ),
    Write("site.delete", "delete", lambda w: f"/api/v1/sites/{w.sites[1].pk}/", target_type="site"),
    Write(
        "member.invite",
        "post",
        lambda w: "/api/v1/memberships/",
        lambda w: {"org": w.org.pk, "email": "inv@alpha.example", "role": "viewer"},
        "invitation",
    ),
    Write(
        "member.role_change",
        "patch",
        lambda w: f"/api/v1/memberships/{_member(w).pk}/",
        lambda w: {"role": "viewer"},
        "membership",
    ),
    Write(
        "member.remove",
        "delete",
        lambda w: f"/api/v1/memberships/{_member(w).pk}/",
        target_type="membership",
    ),
    Write(
        "site_role.assign",
        "post",
        lambda w: "/api/v1/site-roles/",
        lambda w: {"site": w.sites[0].pk, "user": w.users["viewer"].pk, "role": "operator"},
        "siteroleassignment",
    ),
    Write(
        "role.create",
        "post",
        lambda w: "/api/v1/roles/",
        lambda w: {"org": w.org.pk, "name": "Auditor", "permissions": ["activity:read"]},
        "role",
    ),
    Write(
        "role.update",
        "patch",
        lambda w: f"/api/v1/roles/{_custom_role(w).pk}/",
        lambda w: {"permissions": ["site:read", "user:read"]},
        "role",
    ),
    Write(
        "role.delete",
        "delete",
        lambda w: f"/api/v1/roles/{_custom_role(w).pk}/",
        target_type="role",
    ),
    Write("apikey.create", "post", lambda w: "/api/v1/tokens/", lambda w: {"name": "ci"}, "apikey"),
    Write(
        "apikey.revoke",
        "delete",
        lambda w: f"/api/v1/tokens/{_token(w).pk}/",
        target_type="apikey",
    ),
]


@pytest.mark.parametrize("write", WRITES, ids=[w.verb for w in WRITES])
def test_every_api_write_is_recorded(org_a: OrgWorld, write: Write) -> None:
    actor = org_a.users["owner"]
    url, data = write.url(org_a), write.data(org_a)
    ActivityEvent.unscoped.all().delete()
    response = getattr(api_client_for(actor), write.method)(url, data, format="json")
    assert 200 <= response.status_code < 300, response.content
    event = ActivityEvent.unscoped.get(verb=write.verb)
    assert (
        event.actor_user_id == actor.pk
        and event.actor_label == actor.email
        and event.actor_type == "user"
    )
    assert event.org_id == org_a.org.pk
    assert event.target_type == write.target_type and event.target_id and event.target_label
    assert event.result == "ok"


def test_site_role_removal_is_recorded(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    created = owner.post(
        "/api/v1/site-roles/",
        {"site": org_a.sites[0].pk, "user": org_a.users["viewer"].pk, "role": "operator"},
        format="json",
    ).json()
    assert owner.delete(f"/api/v1/site-roles/{created['id']}/").status_code == 204
    event = ActivityEvent.unscoped.get(verb="site_role.remove")
    assert (event.org_id, event.site_id, event.target_id) == (
        org_a.org.pk,
        org_a.sites[0].pk,
        str(created["id"]),
    )


def test_refused_writes_change_nothing_and_are_logged_as_denied(org_a: OrgWorld) -> None:
    ActivityEvent.unscoped.all().delete()
    viewer = api_client_for(org_a.users["viewer"])
    assert (
        viewer.patch(
            f"/api/v1/sites/{org_a.sites[0].pk}/", {"name": "pwned"}, format="json"
        ).status_code
        == 403
    )
    assert (
        viewer.post(
            "/api/v1/sites/", {"org": org_a.org.pk, "name": "pwned"}, format="json"
        ).status_code
        == 403
    )
    assert not Site.unscoped.filter(name="pwned").exists()
    events = list(ActivityEvent.unscoped.order_by("id").values_list("verb", "result", "org_id"))
    assert events == [
        ("site.update", "denied", org_a.org.pk),
        ("site.create", "denied", org_a.org.pk),
    ]


def test_refusing_the_last_owner_is_logged_as_failed(org_a: OrgWorld) -> None:
    owner = Membership.unscoped.get(org=org_a.org, user=org_a.users["owner"])
    response = api_client_for(org_a.users["owner"]).delete(f"/api/v1/memberships/{owner.pk}/")
    assert response.status_code == 400
    event = ActivityEvent.unscoped.get(verb="member.remove")
    assert event.result == "failed" and "last owner" in event.details["reason"]


def test_a_save_that_changes_nothing_writes_no_event(org_a: OrgWorld) -> None:
    ActivityEvent.unscoped.all().delete()
    owner = api_client_for(org_a.users["owner"])
    site = org_a.sites[0]
    assert (
        owner.patch(f"/api/v1/sites/{site.pk}/", {"name": site.name}, format="json").status_code
        == 200
    )
    viewer = Membership.unscoped.get(org=org_a.org, user=org_a.users["viewer"])
    assert (
        owner.patch(
            f"/api/v1/memberships/{viewer.pk}/", {"role": "viewer"}, format="json"
        ).status_code
        == 200
    )
    assert not ActivityEvent.unscoped.exists()


# --- reading the log -------------------------------------------------------------------------------


@pytest.fixture
def log(org_a: OrgWorld, org_b: OrgWorld) -> dict[str, ActivityEvent]:
    alice = Actor.for_user(org_a.users["admin"], ip="10.0.0.5")
    bob = Actor.for_user(org_a.users["operator"])
    site = org_a.sites[0]
    return {
        "rename": activity_record(
            actor=alice, verb="site.update", org=org_a.org, site=site, target=site
        ),
        "invite": activity_record(
            actor=bob, verb="member.invite", org=org_a.org, target_label="x@alpha.example"
        ),
        "denied": activity_record(
            actor=bob,
            verb="miner.reboot",
            org=org_a.org,
            site=site,
            result="denied",
            target_label="rig-1",
        ),
        "formula": activity_record(
            actor=alice,
            verb="site.create",
            org=org_a.org,
            target_label='=HYPERLINK("http://evil.example","x")',
        ),
        "plus": activity_record(
            actor=alice, verb="site.create", org=org_a.org, target_label="+1+1"
        ),
        "minus": activity_record(
            actor=alice, verb="site.create", org=org_a.org, target_label="-2+3"
        ),
        "at": activity_record(
            actor=alice, verb="site.create", org=org_a.org, target_label="@SUM(A1)"
        ),
        "tab": activity_record(actor=alice, verb="site.create", org=org_a.org, target_label="\t=1"),
        "other-org": activity_record(
            actor=Actor.for_user(org_b.users["owner"]),
            verb="site.update",
            org=org_b.org,
            target_label="bravo thing",
        ),
    }


def listed(client: Any, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/activity/{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?verb=site.", {"rename", "formula", "plus", "minus", "at", "tab"}),
        ("?verb=member", {"invite"}),
        ("?result=denied", {"denied"}),
        ("?actor=operator@", {"invite", "denied"}),
        ("?target=rig-", {"denied"}),
        ("?target_type=site", {"rename"}),
        ("?actor_type=user&result=ok&verb=site.update", {"rename"}),
    ],
)
def test_activity_filters(
    org_a: OrgWorld, log: dict[str, ActivityEvent], query: str, expected: set[str]
) -> None:
    ids = {row["id"] for row in listed(api_client_for(org_a.users["viewer"]), query)}
    assert ids == {log[name].pk for name in expected}


def test_activity_site_and_time_filters(org_a: OrgWorld, log: dict[str, ActivityEvent]) -> None:
    client = api_client_for(org_a.users["viewer"])
    at_site = {row["id"] for row in listed(client, f"?site={org_a.sites[0].pk}")}
    assert at_site == {log["rename"].pk, log["denied"].pk}
    pivot = log["denied"].created_at
    since = {
        row["id"] for row in listed(client, f"?since={pivot.isoformat().replace('+00:00', 'Z')}")
    }
    assert log["denied"].pk in since and log["rename"].pk not in since


@pytest.mark.parametrize(
    "query",
    ["?since=yesterday", "?result=exploded", "?actor_type=robot", "?org=abc", f"?site={10**12}"],
)
def test_bad_filter_values_are_400(
    org_a: OrgWorld, log: dict[str, ActivityEvent], query: str
) -> None:
    response = api_client_for(org_a.users["viewer"]).get(f"/api/v1/activity/{query}")
    assert response.status_code == 400, (query, response.status_code)


def test_activity_is_newest_first_with_a_stable_tiebreak(
    org_a: OrgWorld, log: dict[str, ActivityEvent]
) -> None:
    ActivityEvent.unscoped.filter(org=org_a.org).update(
        created_at=log["rename"].created_at
    )  # all at once
    client = api_client_for(org_a.users["viewer"])
    first = [row["id"] for row in listed(client)]
    assert first == sorted(first, reverse=True)
    assert first == [row["id"] for row in listed(client)]


def export(client: Any, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/api/v1/activity/export/{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_applies_the_filters_and_the_scope(
    org_a: OrgWorld, log: dict[str, ActivityEvent]
) -> None:
    client = api_client_for(org_a.users["viewer"])
    rows = export(client, "?result=denied")
    assert [r["verb"] for r in rows] == ["miner.reboot"]
    everything = export(client)
    assert len(everything) == len(log) - 1
    assert not any("bravo" in ",".join(r.values()) for r in everything)


def test_export_details_are_json_with_org_and_site_names(
    org_a: OrgWorld, log: dict[str, ActivityEvent]
) -> None:
    import json

    rows = export(api_client_for(org_a.users["viewer"]), "?verb=site.update")
    assert rows, "the log fixture has a site.update"
    row = rows[0]
    assert row["org_name"] == org_a.org.name and row["site_name"] == org_a.sites[0].name
    assert json.loads(row["details"]) == log["rename"].details


def test_export_neutralises_spreadsheet_formulas(
    org_a: OrgWorld, log: dict[str, ActivityEvent]
) -> None:
    rows = export(api_client_for(org_a.users["viewer"]), "?verb=site.create")
    labels = sorted(r["target_label"] for r in rows)
    assert all(label.startswith("'") for label in labels), labels
    assert '\'=HYPERLINK("http://evil.example","x")' in labels
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_export_needs_activity_read(org_a: OrgWorld, log: dict[str, ActivityEvent]) -> None:
    Role.unscoped.create(org=org_a.org, slug="blind", name="Blind", permissions=["site:read"])
    Membership.unscoped.filter(user=org_a.users["viewer"]).update(
        role=Role.unscoped.get(slug="blind")
    )
    client = api_client_for(org_a.users["viewer"])
    assert export(client) == []
    assert listed(client) == []
    assert api_client_for(None).get("/api/v1/activity/export/").status_code in (401, 403)


def test_outsider_sees_no_activity(outsider: User, log: dict[str, ActivityEvent]) -> None:
    client = api_client_for(outsider)
    assert listed(client) == []
    assert export(client) == []
    for event in log.values():
        assert client.get(f"/api/v1/activity/{event.pk}/").status_code == 404
    make_user("x@nowhere.example")
