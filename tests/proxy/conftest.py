"""Proxy tests: real simulated rigs on loopback, the real ASGI app, PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from fleet.models import Miner
from fleet.services.credentials import credentials_store
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet, loopback_allowed, rigs
from tests.proxy.support import Browser

__all__ = ["loopback_allowed", "rigs"]


@pytest.fixture(autouse=True)
def _fresh_state(settings: Any) -> Iterator[None]:
    """Each test starts without cached tokens, gates or rate counters, and keeps its shared
    state under a namespace of its own: the xdist workers share one Redis database, and a
    neighbour's cleanup must never delete this test's login lock or token."""
    import uuid

    import redis

    from proxy import antminer, asgi, refresh, store, tokens

    namespace = f"t{uuid.uuid4().hex[:12]}:"
    settings.PROXY_STORE_NAMESPACE = namespace

    store._local._items.clear()
    store._local._sets.clear()
    asgi._recent.clear()
    tokens._memo.clear()
    antminer._challenges.clear()
    refresh._marked.clear()
    yield
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()


@pytest.fixture(autouse=True)
async def _close_clients() -> Any:
    """The pooled clients belong to the test's event loop: close them with it."""
    yield
    from proxy import db, refresh, store, upstream

    await refresh.marks_written()
    await upstream.close()
    await store.close()
    db.shutdown()  # the pool threads' connections would keep the test database open


def add_proto(org: OrgWorld, fleet: ThreadedFleet, index: int = 0, **extra: Any) -> Miner:
    entry = [e for e in fleet.inventory if e["kind"] == "protoos"][index]
    miner = Miner.unscoped.create(
        org=org.org,
        site=org.sites[0],
        identifier=f"mac:{entry['mac']}-{org.org.slug}",
        name=f"proto-{index}",
        host=entry["host"],
        port=entry["ports"]["http"],
        scheme="http",
        driver="protoos",
        **extra,
    )
    credentials_store(miner, username="", password=PASSWORD)
    return miner


def add_loopback_proto(org: OrgWorld, port: int, name: str) -> Miner:
    """A ProtoOS miner in ``org`` pointing at a test server on 127.0.0.1:``port``."""
    miner = Miner.unscoped.create(
        org=org.org,
        site=org.sites[0],
        identifier=f"serial:{name}",
        name=name,
        host="127.0.0.1",
        port=port,
        scheme="http",
        driver="protoos",
    )
    credentials_store(miner, username="", password="whatever")
    return miner


@pytest.fixture
def proto(org_a: OrgWorld, rigs: ThreadedFleet, loopback_allowed: None) -> Miner:
    return add_proto(org_a, rigs)


async def browser_for(user: User) -> Browser:
    browser = Browser()
    await sync_to_async(browser.sign_in)(user)
    return browser


@pytest.fixture
def issued(rigs: ThreadedFleet, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every token the simulated rigs issue: ``("login" | "refresh", host)``."""
    from miners.sim import proto as sim_proto

    seen: list[tuple[str, str]] = []
    original = sim_proto._issue

    def counting(m: Any, now: float, login: bool = True) -> str:
        seen.append(("login" if login else "refresh", m.host))
        return original(m, now, login)

    monkeypatch.setattr(sim_proto, "_issue", counting)
    return seen
