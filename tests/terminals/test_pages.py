"""The terminal pages: hosts (list, add, fingerprint, re-trust, remove), the workspace, the
recordings and their policy — each scoped to the caller's org (404 outside, nothing leaked)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.utils import timezone

from accounts.models import ActivityEvent, User
from terminals.models import Recording, SshHost, TerminalPolicy
from terminals.services.recordings import recordings_dir
from tests.conftest import OrgWorld
from tests.terminals.matrix import matrix_host, matrix_session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def loopback(settings: Any, tmp_path: Path) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DATA_DIR = tmp_path


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_add_a_host_then_see_it_listed(org_a: OrgWorld) -> None:
    admin = client_for(org_a.users["admin"])
    page = admin.get("/terminals/hosts/add/")
    assert page.status_code == 200 and b"Password or private key" in page.content
    response = admin.post(
        "/terminals/hosts/add/",
        {
            "site": org_a.sites[0].pk,
            "name": "controller",
            "address": "127.0.0.1",
            "port": 22,
            "username": "root",
            "auth_method": "password",
            "secret": "pa55word-typed",
        },
    )
    host = SshHost.unscoped.get(name="controller")
    assert response.status_code == 302 and response["Location"] == f"/terminals/hosts/{host.pk}/"
    detail = admin.get(response["Location"])
    assert b"pa55word-typed" not in detail.content and b"Not seen yet" in detail.content
    listed = client_for(org_a.users["operator"]).get("/terminals/hosts/")
    assert b"controller" in listed.content and b"Add host" not in listed.content


def test_a_refused_address_lands_on_the_form(org_a: OrgWorld, settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    response = client_for(org_a.users["admin"]).post(
        "/terminals/hosts/add/",
        {
            "site": org_a.sites[0].pk,
            "name": "x",
            "address": "127.0.0.1",
            "port": 22,
            "username": "root",
            "auth_method": "password",
            "secret": "pw",
        },
    )
    assert response.status_code == 200 and b'class="error"' in response.content
    assert not SshHost.unscoped.exists()


def test_changed_key_shows_both_fingerprints_and_retrust(org_a: OrgWorld) -> None:
    host = matrix_host(org_a)
    host.host_key, host.host_key_fingerprint = "ssh-ed25519 AAAAold", "SHA256:oldprint"
    host.presented_key, host.presented_fingerprint = "ssh-ed25519 AAAAnew", "SHA256:newprint"
    host.save()
    operator = client_for(org_a.users["operator"]).get(f"/terminals/hosts/{host.pk}/")
    assert b"SHA256:newprint" in operator.content and b"Trust the new key" not in operator.content
    assert (
        client_for(org_a.users["operator"]).post(f"/terminals/hosts/{host.pk}/retrust/").status_code
        == 403
    )
    admin = client_for(org_a.users["admin"])
    assert b"Trust the new key" in admin.get(f"/terminals/hosts/{host.pk}/").content
    assert admin.post(f"/terminals/hosts/{host.pk}/retrust/").status_code == 302
    host.refresh_from_db()
    assert host.host_key_fingerprint == "SHA256:newprint" and not host.key_changed
    assert ActivityEvent.unscoped.filter(verb="sshhost.retrust", result="ok").count() == 1


def test_other_orgs_hosts_sessions_and_recordings_are_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = matrix_host(org_b)
    session = matrix_session(org_b)
    recording = Recording.unscoped.create(
        org=org_b.org, site=org_b.sites[0], session=session, path="x.cast"
    )
    owner = client_for(org_a.users["owner"])
    for url in (
        f"/terminals/hosts/{theirs.pk}/",
        f"/terminals/recordings/{recording.pk}/",
    ):
        assert owner.get(url).status_code == 404
    assert owner.post(f"/terminals/hosts/{theirs.pk}/retrust/").status_code == 404
    assert owner.post(f"/terminals/hosts/{theirs.pk}/delete/").status_code == 404
    for url in (
        "/terminals/",
        "/terminals/hosts/",
        "/terminals/hosts/add/",  # no site nor jump host of theirs among the choices
        "/terminals/recordings/",
    ):
        body = owner.get(url).content.decode().lower()
        assert "bravo" not in body, url
    assert SshHost.unscoped.filter(pk=theirs.pk).exists()


def test_workspace_lists_own_open_sessions_and_allows_xterm_styles(org_a: OrgWorld) -> None:
    host = matrix_host(org_a)
    mine = matrix_session(org_a)
    mine.owner = org_a.users["operator"]
    mine.save()
    other = matrix_session(org_a, 1)  # the holder's
    page = client_for(org_a.users["operator"]).get("/terminals/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f'"id": {mine.pk}' in text and f'"id": {other.pk}' not in text
    assert host.name in text and "vendor/xterm/xterm.js" in text
    assert "style-src 'self' 'unsafe-inline'" in page["Content-Security-Policy"]
    assert "script-src 'self';" in page["Content-Security-Policy"]
    assert client_for(org_a.users["viewer"]).get("/terminals/").status_code == 403


def test_recordings_list_player_and_policy(org_a: OrgWorld) -> None:
    session = matrix_session(org_a)
    path = recordings_dir() / "r.cast"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"version": 2, "width": 80, "height": 24}\n[0.5, "o", "hello"]\n')
    recording = Recording.unscoped.create(
        org=org_a.org, site=org_a.sites[0], session=session, path="r.cast", size=60
    )
    admin = client_for(org_a.users["admin"])
    listed = admin.get("/terminals/recordings/")
    assert f"/terminals/recordings/{recording.pk}/".encode() in listed.content
    assert b"Recording policy" in listed.content
    player = admin.get(f"/terminals/recordings/{recording.pk}/")
    assert player.status_code == 200
    download = admin.get(f"/api/v1/terminals/recordings/{recording.pk}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/x-asciicast"
    assert b"hello" in b"".join(getattr(download, "streaming_content", []))
    # an operator sees their own recordings only: the holder's is a 404
    operator = client_for(org_a.users["operator"])
    assert operator.get(f"/terminals/recordings/{recording.pk}/").status_code == 404
    assert b"Recording policy" not in operator.get("/terminals/recordings/").content
    assert operator.post("/terminals/policy/", {"retention_days": 5}).status_code == 403
    saved = admin.post("/terminals/policy/", {"record_sessions": "on", "retention_days": 7})
    assert saved.status_code == 302
    policy = TerminalPolicy.objects.get(org=org_a.org)
    assert policy.retention_days == 7 and policy.record_sessions and not policy.record_input
    bad = admin.post("/terminals/policy/", {"retention_days": "-3"}, follow=True)
    assert bad.status_code == 200
    assert TerminalPolicy.objects.get(org=org_a.org).retention_days == 7


def test_a_recording_in_progress_shows_its_size_and_length_so_far(org_a: OrgWorld) -> None:
    """The row's size and duration are written when the session ends: until then the list and
    the player read the file (what the download already serves) and the time since the start."""
    session = matrix_session(org_a)  # open (starting): still recording
    body = '{"version": 2, "width": 80, "height": 24}\n' + '[0.5, "o", "x"]\n' * 150
    path = recordings_dir() / "live.cast"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    recording = Recording.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        session=session,
        path="live.cast",
        started_at=timezone.now() - dt.timedelta(seconds=95),
    )
    admin = client_for(org_a.users["admin"])
    listed = admin.get("/terminals/recordings/").content.decode()
    row = listed.split(f'data-recording="{recording.pk}"')[1].split("</tr>")[0]
    assert "Recording…" in row
    length = row.split("data-recording-length>")[1].split("</td>")[0]
    size = row.split("data-recording-size>")[1].split("</td>")[0]
    assert 95 <= int(length.split(" s")[0]) < 120 and "so far" in length
    assert size == f"{filesizeformat(len(body))} so far", size
    assert "0\xa0bytes" not in size and "0 bytes" not in size
    player = admin.get(f"/terminals/recordings/{recording.pk}/").content.decode()
    assert filesizeformat(len(body)) in player and "Recording…" in player

    # finished: the row's own figures, no badge
    Recording.unscoped.filter(pk=recording.pk).update(
        size=len(body), duration=12.4, ended_at=timezone.now()
    )
    listed = admin.get("/terminals/recordings/").content.decode()
    row = listed.split(f'data-recording="{recording.pk}"')[1].split("</tr>")[0]
    assert "Recording…" not in row and "12 s</td>" in row and "so far" not in row


def test_login_state_is_a_200_either_way(org_a: OrgWorld) -> None:
    assert Client().get("/terminals/login-state/").json() == {"signed_in": False}
    signed_in = client_for(org_a.users["viewer"]).get("/terminals/login-state/")
    assert signed_in.status_code == 200 and signed_in.json() == {"signed_in": True}
    assert signed_in["Cache-Control"] == "no-store"
