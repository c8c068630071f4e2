"""Miner-token single flight across web processes, through the proxy itself: N parallel
browser requests spread over two daphne processes (sharing Redis, as deployed) cause exactly
one login on the rig, and every request is answered."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import redis

from fleet.models import Miner
from tests.conftest import OrgWorld
from tests.fleet.nodes.live import servers
from tests.proxy.conftest import browser_for

__all__ = ["servers"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PARALLEL = 16


@pytest.fixture
def loopback_for_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server processes read their settings from the environment: allow the simulators'
    loopback range there too (before ``servers`` copies the environment)."""
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")


def _forget_rig_state(miner: Miner) -> None:
    """The server processes keep their state outside any test namespace: drop this rig's
    (a previous run may have left a token for the same id and address)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        for key in client.scan_iter(f"rw:proxy:*:{miner.pk}:{miner.host}:{miner.port}*"):
            client.delete(key)
    finally:
        client.close()


async def test_parallel_requests_over_two_processes_log_in_once(
    loopback_for_servers: None,
    proto: Miner,
    org_a: OrgWorld,
    issued: list[tuple[str, str]],
    servers: Callable[[], str],
) -> None:
    _forget_rig_state(proto)
    bases = [servers(), servers()]
    viewer = await browser_for(org_a.users["viewer"])
    cookie = "; ".join(f"{k}={v}" for k, v in viewer.cookies.items())

    async def one(http: aiohttp.ClientSession, index: int) -> tuple[int, Any]:
        base = bases[index % 2]
        async with http.get(
            f"{base}/api-proxy/miners/{proto.pk}/api/v1/mining",
            headers={"Cookie": cookie, "Accept": "application/json"},
        ) as reply:
            return reply.status, await reply.json()

    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(one(http, i) for i in range(PARALLEL)))
    assert [status for status, _ in answers] == [200] * PARALLEL, answers
    assert issued == [("login", proto.host)]  # 16 requests, 2 processes, 1 login
    _forget_rig_state(proto)
