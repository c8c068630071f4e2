"""Recordings against a real sshd: asciinema v2 output and resizes (keystrokes only by org
policy), the download plays back, retention prunes old ones; a session through a jump host."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import ActivityEvent
from terminals.models import Recording, SshHost, TerminalPolicy, TerminalSession
from terminals.services.hosts import host_add
from terminals.services.recordings import recording_file, recordings_prune
from terminals.services.sessions import session_open
from terminals.tasks import prune_recordings
from tests.conftest import OrgWorld, api_client_for
from tests.terminals import test_sessions as ts
from tests.terminals.conftest import Sshd
from tests.terminals.matrix import matrix_session

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def loopback(settings: Any, tmp_path: Path) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DATA_DIR = tmp_path


def cast(recording: Recording) -> tuple[dict[str, Any], list[list[Any]]]:
    lines = recording_file(recording).read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


async def run_session(world: OrgWorld, host: SshHost, script: str, needle: bytes) -> int:
    user = world.users["operator"]
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host, cols=90)
    socket = await ts.open_socket(user, row.pk)
    await ts.attach(socket)
    await socket.send_to(text_data=json.dumps({"type": "resize", "cols": 120, "rows": 33}))
    await ts.type_(socket, script)
    seen = bytearray()
    await ts.read_until(socket, needle, seen)
    await ts.type_(socket, "exit\n")
    for _ in range(100):
        frame = await socket.receive_output(timeout=10)
        if frame["type"] == "websocket.close":
            break
    return row.pk


@pytest.mark.slow
async def test_a_recording_plays_back_and_downloads(org_a: OrgWorld, sshd: Sshd) -> None:
    host = await sync_to_async(ts.add_host)(org_a, sshd)
    session_id = await run_session(
        org_a, host, "echo secret-typed >/dev/null; echo out-$((6*7))\n", b"out-42"
    )
    recording = await sync_to_async(Recording.unscoped.get)(session_id=session_id)
    assert recording.ended_at is not None and recording.size > 0 and not recording.with_input
    header, events = cast(recording)
    assert header["version"] == 2 and header["width"] == 90 and header["height"] == 24
    assert header["env"]["TERM"] == "xterm-256color"
    output = "".join(e[2] for e in events if e[1] == "o")
    assert "out-42" in output
    assert ["r", "120x33"] in [e[1:] for e in events]
    assert {e[1] for e in events} <= {"o", "r"}  # no keystrokes by default
    times = [e[0] for e in events]
    assert times == sorted(times)
    client = await sync_to_async(api_client_for)(org_a.users["operator"])
    listed = await sync_to_async(client.get)("/api/v1/terminals/recordings/")
    assert [r["id"] for r in listed.json()["results"]] == [recording.pk]
    download = await sync_to_async(client.get)(
        f"/api/v1/terminals/recordings/{recording.pk}/download/"
    )
    assert download.status_code == 200
    assert b"out-42" in b"".join(getattr(download, "streaming_content", []))
    session = await sync_to_async(TerminalSession.unscoped.get)(pk=session_id)
    event = await sync_to_async(ActivityEvent.unscoped.get)(verb="terminal.session")
    assert event.details["session"] == session_id and event.details["bytes_out"] > 0
    assert session.bytes_out == event.details["bytes_out"]


@pytest.mark.slow
async def test_keystrokes_by_policy_and_no_recording_when_off(org_a: OrgWorld, sshd: Sshd) -> None:
    host = await sync_to_async(ts.add_host)(org_a, sshd)
    await sync_to_async(TerminalPolicy.objects.create)(org=org_a.org, record_input=True)
    first = await run_session(org_a, host, "echo typed-$((1+1))\n", b"typed-2")
    recording = await sync_to_async(Recording.unscoped.get)(session_id=first)
    _, events = cast(recording)
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert recording.with_input and "echo typed-$((1+1))" in typed
    await sync_to_async(TerminalPolicy.objects.filter(org=org_a.org).update)(record_sessions=False)
    second = await run_session(org_a, host, "echo none-$((2+2))\n", b"none-4")
    assert not await sync_to_async(Recording.unscoped.filter(session_id=second).exists)()


def test_retention_prunes_old_recordings_per_org(org_a: OrgWorld, org_b: OrgWorld) -> None:
    now = timezone.now()
    TerminalPolicy.objects.create(org=org_a.org, retention_days=3)
    made: dict[str, Recording] = {}
    for world, name, age in (
        (org_a, "old", 4),
        (org_a, "new", 2),
        (org_b, "b-old", 4),  # org B keeps the default 30 days
        (org_b, "b-ancient", 40),
    ):
        session = matrix_session(world, len(made))
        rec = Recording.unscoped.create(
            org=world.org,
            site=world.sites[0],
            session=session,
            path=f"{world.org.pk}/{name}.cast",
            ended_at=now - dt.timedelta(days=age),
        )
        recording_file(rec).parent.mkdir(parents=True, exist_ok=True)
        recording_file(rec).write_text("{}\n")
        made[name] = rec
    live = matrix_session(org_a, 9)  # still recording: never pruned
    Recording.unscoped.create(org=org_a.org, site=org_a.sites[0], session=live, path="live.cast")
    cut = matrix_session(org_a, 8)  # its server restarted mid-recording: no end, closed
    cut.state = "closed"
    cut.save()
    Recording.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        session=cut,
        path="cut.cast",
        started_at=now - dt.timedelta(days=5),
    )
    assert prune_recordings() == 3
    left = set(Recording.unscoped.values_list("path", flat=True))
    assert left == {f"{org_a.org.pk}/new.cast", f"{org_b.org.pk}/b-old.cast", "live.cast"}
    assert not recording_file(made["old"]).exists() and recording_file(made["new"]).exists()
    assert recordings_prune() == 0


def test_the_beat_schedule_runs_the_pruning(settings: Any) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "terminals.prune_recordings" in tasks


@pytest.mark.slow
async def test_a_session_through_a_jump_host(org_a: OrgWorld, sshd: Sshd) -> None:
    """The target is reached through the jump host's connection (direct-tcpip); both keys
    are pinned on first use."""

    def add_pair() -> SshHost:
        admin = Actor.for_user(org_a.users["admin"])
        jump = host_add(
            actor=admin,
            site=org_a.sites[0],
            name="bastion",
            address="127.0.0.1",
            port=sshd.port,
            username="root",
            auth_method="key",
            secret=sshd.client_key,
        )
        return host_add(
            actor=admin,
            site=org_a.sites[0],
            name="behind",
            address="127.0.0.1",
            port=sshd.port,
            username="root",
            auth_method="key",
            secret=sshd.client_key,
            jump_host=jump,
        )

    from terminals import manager

    target = await sync_to_async(add_pair)()
    user = org_a.users["operator"]
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=target)
    socket = await ts.open_socket(user, row.pk)
    await ts.attach(socket)
    live = manager.get(row.pk)
    assert live is not None and live.jump is not None  # the target rides the jump's connection
    await ts.type_(socket, "echo via-$((3*3))\n")
    await ts.read_until(socket, b"via-9", bytearray())
    await live.close("test over", 4410)
    pinned = await sync_to_async(
        lambda: list(SshHost.unscoped.values_list("host_key", flat=True))
    )()
    assert all(key.startswith("ssh-ed25519 ") for key in pinned)
