"""The terminals REST API beyond the role matrix: secrets never come back, jump hosts stay in
their org, re-trust is audited, sessions are their owner's, and nothing crosses orgs."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import ActivityEvent
from terminals.models import SessionState, SshHost, TerminalSession
from tests.conftest import OrgWorld, api_client_for
from tests.terminals.matrix import matrix_host

pytestmark = pytest.mark.django_db

HOSTS = "/api/v1/terminals/hosts/"
SESSIONS = "/api/v1/terminals/sessions/"


@pytest.fixture(autouse=True)
def loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def new_host(world: OrgWorld, **extra: Any) -> Any:
    body = {
        "site": world.sites[0].pk,
        "name": "rack 4 controller",
        "address": "127.0.0.1",
        "port": 2222,
        "username": "root",
        "auth_method": "password",
        "secret": "s3cret-Password",
        **extra,
    }
    return api_client_for(world.users["admin"]).post(HOSTS, body, format="json")


def test_the_secret_is_stored_encrypted_and_never_returned(org_a: OrgWorld) -> None:
    response = new_host(org_a)
    assert response.status_code == 201, response.content
    assert b"s3cret-Password" not in response.content
    assert response.json()["has_secret"] is True
    row = SshHost.unscoped.get(pk=response.json()["id"])
    assert row.secret is not None and b"s3cret-Password" not in bytes(row.secret)
    listed = api_client_for(org_a.users["operator"]).get(HOSTS)
    assert listed.status_code == 200 and b"s3cret-Password" not in listed.content
    event = ActivityEvent.unscoped.get(verb="sshhost.add")
    assert "s3cret" not in str(event.details)


def test_a_bad_private_key_is_a_field_error(org_a: OrgWorld) -> None:
    response = new_host(org_a, auth_method="key", secret="-----BEGIN nonsense-----")
    assert response.status_code == 400
    assert "secret" in response.json()


def test_jump_host_must_be_of_the_same_org_and_one_hop(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = matrix_host(org_b)
    response = new_host(org_a, jump_host=theirs.pk)
    assert response.status_code == 400 and "jump_host" in response.json()
    assert str(theirs.pk) in response.content.decode()  # "Invalid pk": nothing else about it
    assert "bravo" not in response.content.decode()
    bastion = matrix_host(org_a)
    via = new_host(org_a, jump_host=bastion.pk)
    assert via.status_code == 201 and via.json()["jump_host"] == bastion.pk
    second = new_host(org_a, name="behind two", jump_host=via.json()["id"])
    assert second.status_code == 400 and "jump_host" in second.json()
    client = api_client_for(org_a.users["admin"])
    # the bastion can't be deleted while a host jumps through it: a 400, not a 500
    assert client.delete(f"{HOSTS}{bastion.pk}/").status_code == 400
    cleared = client.patch(f"{HOSTS}{via.json()['id']}/", {"jump_host": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["jump_host"] is None
    assert client.delete(f"{HOSTS}{bastion.pk}/").status_code == 204


def test_retrust_a_changed_key_needs_terminal_manage_and_is_audited(org_a: OrgWorld) -> None:
    host = matrix_host(org_a)
    host.host_key = "ssh-ed25519 AAAAold"
    host.host_key_fingerprint = "SHA256:old"
    host.presented_key = "ssh-ed25519 AAAAnew"
    host.presented_fingerprint = "SHA256:new"
    host.save()
    shown = api_client_for(org_a.users["operator"]).get(f"{HOSTS}{host.pk}/").json()
    assert shown["key_changed"] is True and shown["presented_fingerprint"] == "SHA256:new"
    refused = api_client_for(org_a.users["operator"]).post(f"{HOSTS}{host.pk}/retrust/")
    assert refused.status_code == 403
    blocked = api_client_for(org_a.users["operator"]).post(
        SESSIONS, {"host": host.pk}, format="json"
    )
    assert blocked.status_code == 400 and "host" in blocked.json()
    done = api_client_for(org_a.users["admin"]).post(f"{HOSTS}{host.pk}/retrust/")
    assert done.status_code == 200
    assert done.json()["host_key_fingerprint"] == "SHA256:new" and not done.json()["key_changed"]
    event = ActivityEvent.unscoped.get(verb="sshhost.retrust", result="ok")
    assert event.details == {"from": "SHA256:old", "to": "SHA256:new"}


def test_sessions_are_listed_to_their_owner_only_and_close(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    host = matrix_host(org_a)
    operator = api_client_for(org_a.users["operator"])
    opened = operator.post(SESSIONS, {"host": host.pk, "cols": 120, "rows": 40}, format="json")
    assert opened.status_code == 201, opened.content
    body = opened.json()
    assert body["ws_url"].endswith(f"/ws/terminals/{body['id']}/")
    assert body["ws_url"].startswith("ws://") and body["state"] == "starting"
    assert [s["id"] for s in operator.get(SESSIONS).json()["results"]] == [body["id"]]
    assert operator.get(f"{SESSIONS}?page_size=100").status_code == 200  # the sidebar's query
    for other in (org_a.users["admin"], org_b.users["owner"]):
        client = api_client_for(other)
        assert client.get(SESSIONS).json()["results"] == []
        assert client.get(f"{SESSIONS}{body['id']}/").status_code == 404
        assert client.delete(f"{SESSIONS}{body['id']}/").status_code == 404
    assert operator.delete(f"{SESSIONS}{body['id']}/").status_code == 204
    row = TerminalSession.unscoped.get(pk=body["id"])
    assert row.state == SessionState.CLOSED and row.end_reason == "closed by user"
    assert ActivityEvent.unscoped.filter(verb="terminal.session").count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"host": "HOST", "cols": 0},
        {"host": "HOST", "rows": 100000},
        {"host": "HOST", "term": "evil\x1b"},
        {"host": "1 OR 1=1"},
        {"host": True},
        {},
    ],
)
def test_bad_session_bodies_are_field_errors(org_a: OrgWorld, body: dict[str, Any]) -> None:
    host = matrix_host(org_a)
    if body.get("host") == "HOST":
        body = {**body, "host": host.pk}
    response = api_client_for(org_a.users["operator"]).post(SESSIONS, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) & {"host", "cols", "rows", "term"}


def test_other_orgs_hosts_are_not_choices_nor_counted(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = matrix_host(org_b)
    client = api_client_for(org_a.users["owner"])
    assert client.get(HOSTS).json()["count"] == 0
    assert client.get(f"{HOSTS}{theirs.pk}/").status_code == 404
    assert client.post(f"{HOSTS}{theirs.pk}/retrust/").status_code == 404
    response = client.post(SESSIONS, {"host": theirs.pk}, format="json")
    assert response.status_code == 400 and "bravo" not in response.content.decode()
