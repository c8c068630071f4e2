"""The miner-token lifecycle through the proxy: shared, single-flight, one renewal per 401."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleet.models import Miner
from miners import Credentials
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet
from tests.proxy.conftest import browser_for

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def url(miner: Miner) -> str:
    return f"/api-proxy/miners/{miner.pk}/api/v1/mining"


def on_rig(rigs: ThreadedFleet, host: str, change: Any) -> None:
    async def apply() -> None:
        change(rigs.fleet.miner(host))

    rigs.call(apply())


async def test_parallel_requests_log_in_once(
    proto: Miner, org_a: OrgWorld, issued: list[tuple[str, str]]
) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    replies = await asyncio.gather(*(viewer.call("GET", url(proto)) for _ in range(12)))
    assert [r.status for r in replies] == [200] * 12
    assert issued == [("login", proto.host)]


async def test_a_revoked_access_token_is_refreshed_once_not_logged_in(
    proto: Miner, org_a: OrgWorld, rigs: ThreadedFleet, issued: list[tuple[str, str]]
) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(proto))).status == 200
    on_rig(rigs, proto.host, lambda m: setattr(m, "access_tokens", {}))  # access only
    assert (await viewer.call("GET", url(proto))).status == 200
    assert issued == [("login", proto.host), ("refresh", proto.host)]


async def test_a_revoked_session_logs_in_again_once(
    proto: Miner, org_a: OrgWorld, rigs: ThreadedFleet, issued: list[tuple[str, str]]
) -> None:
    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(proto))).status == 200
    on_rig(rigs, proto.host, lambda m: m.revoke_tokens())  # access and refresh
    assert (await viewer.call("GET", url(proto))).status == 200
    assert issued == [("login", proto.host), ("login", proto.host)]


async def test_a_rig_that_keeps_refusing_gets_one_retry_then_502(
    proto: Miner,
    org_a: OrgWorld,
    issued: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from miners.sim import state

    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(proto))).status == 200
    monkeypatch.setattr(state.Miner, "access_valid", lambda self, token, now: False)
    reply = await viewer.call("GET", url(proto))
    assert reply.status == 502
    assert reply.json()["error"] == "credentials rejected — update them"
    assert issued == [("login", proto.host), ("refresh", proto.host)]  # one renewal, no loop


async def test_a_wrong_password_is_a_visible_502(
    proto: Miner, org_a: OrgWorld, rigs: ThreadedFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy import tokens

    attempts: list[str] = []
    original = tokens._renew

    async def counted(rig: Any, base: Any) -> Any:
        attempts.append(rig.host)
        return await original(rig, base)

    monkeypatch.setattr(tokens, "_renew", counted)
    rigs.fault(proto.host, "wrong_password")
    try:
        viewer = await browser_for(org_a.users["viewer"])
        reply = await viewer.call("GET", url(proto))
    finally:
        rigs.fault(proto.host, "wrong_password", clear=True)
    assert reply.status == 502
    assert reply.json()["error"] == "credentials rejected — update them"
    assert b"rig-pass" not in reply.body
    assert attempts == [proto.host]


WORKER = """
import asyncio, json, os, sys, time
import django
django.setup()
from django.conf import settings
settings.PROXY_STORE_NAMESPACE = sys.argv[6]  # the test's own, as every process would share
from miners import Credentials
from proxy import store, tokens, upstream
from proxy.rigs import Rig

host, port, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rig = Rig(miner_id=int(sys.argv[4]), org_id=1, site_id=1, name="x", driver="protoos",
          host=host, port=port, scheme="http",
          credentials=Credentials(password=sys.argv[5], version=1))

async def main():
    await asyncio.sleep(max(0.0, start - time.time()))
    entries = await asyncio.gather(*(tokens.token_for(rig) for _ in range(8)))
    print(json.dumps(sorted({e.access for e in entries})))
    await upstream.close()
    await store.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_single_flight_across_two_processes(
    rigs: ThreadedFleet, issued: list[tuple[str, str]], settings: Any
) -> None:
    if not settings.REDIS_URL:
        pytest.skip("cross-process single flight needs REDIS_URL")
    entry = next(e for e in rigs.inventory if e["kind"] == "protoos")
    start = time.time() + 3.0
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    args = [
        entry["host"],
        str(entry["ports"]["http"]),
        str(start),
        "987654",
        PASSWORD,
        settings.PROXY_STORE_NAMESPACE,
    ]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    tokens = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    assert issued == [("login", entry["host"])]
    assert tokens[0] == tokens[1] and len(tokens[0]) == 1  # 16 callers, 2 processes, 1 token
    Credentials(password=PASSWORD)  # the workers' login, nothing else


async def test_the_refresh_task_renews_busy_miners_before_expiry(
    proto: Miner, org_a: OrgWorld, issued: list[tuple[str, str]]
) -> None:
    from dataclasses import replace

    from asgiref.sync import sync_to_async

    from proxy import tokens
    from proxy.access import rig_of
    from proxy.refresh import marks_written
    from proxy.tasks import refresh_tokens

    viewer = await browser_for(org_a.users["viewer"])
    assert (await viewer.call("GET", url(proto))).status == 200
    await marks_written()
    rig = await sync_to_async(rig_of)(await Miner.unscoped.aget(pk=proto.pk))
    assert await sync_to_async(refresh_tokens, thread_sensitive=False)() == 0  # not due yet
    entry = await tokens._load(rig)
    assert entry is not None
    await tokens._save(rig, replace(entry, renew_at=time.time() + 30))  # due within AHEAD
    assert await sync_to_async(refresh_tokens, thread_sensitive=False)() == 1
    renewed = await tokens._load(rig)
    assert renewed is not None and renewed.access != entry.access and renewed.via == "refresh"
    assert issued == [("login", proto.host), ("refresh", proto.host)]
    assert (await viewer.call("GET", url(proto))).status == 200
    assert len(issued) == 2  # the browser used the renewed token
