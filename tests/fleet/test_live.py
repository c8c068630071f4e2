"""/ws/live/ against the real ASGI app: scoped groups, coalesced telemetry, typed closes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import Role, SiteRoleAssignment, User
from config.asgi import application
from fleet import consumers, live
from fleet.protocol import org_group, site_group
from tests.conftest import OrgWorld

pytestmark = [pytest.mark.django_db(transaction=True)]
ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def session_headers(user: User | None) -> list[tuple[bytes, bytes]]:
    if user is None:
        return ORIGIN
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [*ORIGIN, (b"cookie", cookie)]


async def connect(user: User | None) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = await sync_to_async(session_headers)(user)
    socket = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, code = await socket.connect(timeout=5)
    return socket, connected, code


def delta(miner_id: int, site_id: int, hashrate: float) -> dict[str, Any]:
    return {
        "id": miner_id,
        "site": site_id,
        "health": "ok",
        "state": "mining",
        "hashrate_ths": hashrate,
        "power_w": 3000.0,
        "max_temp_c": 70.0,
        "updated_at": None,
    }


async def publish(group: str, message: dict[str, Any]) -> None:
    await sync_to_async(live.publish)(group, message)


async def test_anonymous_is_closed_with_4401(db: None) -> None:
    socket, connected, _ = await connect(None)
    assert connected
    assert (await socket.receive_output(timeout=2))["code"] == 4401
    await socket.disconnect()


async def test_telemetry_is_coalesced_and_scoped(org_a: OrgWorld, org_b: OrgWorld) -> None:
    mine, _, _ = await connect(org_a.users["viewer"])
    theirs, _, _ = await connect(org_b.users["viewer"])
    site = org_a.sites[0].pk
    for rate in (100.0, 110.0, 120.0):  # three updates of one miner within a second: one delta
        await publish(site_group(site), {"type": "telemetry", "miners": [delta(7, site, rate)]})
    message = await mine.receive_json_from(timeout=3)
    assert message["type"] == "telemetry"
    assert [m["hashrate_ths"] for m in message["miners"]] == [120.0]
    assert await theirs.receive_nothing(timeout=1.5)
    await mine.disconnect()
    await theirs.disconnect()


async def test_job_progress_goes_to_the_org(org_a: OrgWorld) -> None:
    socket, _, _ = await connect(org_a.users["operator"])
    job = {"id": 1, "kind": "blink", "status": "running", "total": 2, "done": 1, "failed": 0}
    await publish(org_group(org_a.org.pk), {"type": "job", "job": job})
    assert (await socket.receive_json_from(timeout=3)) == {"type": "job", "job": job}
    await socket.disconnect()


async def test_a_site_narrowed_member_misses_that_site(org_a: OrgWorld) -> None:
    viewer = org_a.users["viewer"]
    nothing = await sync_to_async(Role.unscoped.create)(
        org=org_a.org, slug="blind", name="Blind", permissions=[]
    )
    await sync_to_async(SiteRoleAssignment.unscoped.create)(
        user=viewer, site=org_a.sites[0], role=nothing
    )
    socket, _, _ = await connect(viewer)
    hidden, shown = org_a.sites[0].pk, org_a.sites[1].pk
    await publish(site_group(hidden), {"type": "telemetry", "miners": [delta(1, hidden, 1.0)]})
    await publish(site_group(shown), {"type": "telemetry", "miners": [delta(2, shown, 2.0)]})
    message = await socket.receive_json_from(timeout=3)
    assert [m["id"] for m in message["miners"]] == [2]
    await socket.disconnect()


async def test_signing_out_closes_the_socket_with_4401(
    org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.3)
    user = org_a.users["viewer"]
    headers = await sync_to_async(session_headers)(user)
    socket = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    assert (await socket.connect(timeout=5))[0]
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore
    key = headers[-1][1].decode().split("=", 1)[1]
    await sync_to_async(lambda: store(session_key=key).delete())()  # what signing out does
    output = await socket.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": 4401}


async def test_pings_are_answered_and_garbage_closes_4400(org_a: OrgWorld) -> None:
    socket, _, _ = await connect(org_a.users["viewer"])
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong"}
    await socket.send_to(text_data="not json at all")
    assert (await socket.receive_output(timeout=2))["code"] == 4400
    await asyncio.sleep(0.05)
