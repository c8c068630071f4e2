"""The connect timeout: a miner whose port takes the SYN but never completes the handshake is
a 504 after ``PROXY_CONNECT_TIMEOUT``, not a request hanging for the 30 s total."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from fleet.models import Miner
from fleet.services.credentials import credentials_store
from tests.conftest import OrgWorld
from tests.proxy.conftest import browser_for

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A listening port whose accept queue is full: the kernel drops further SYNs, so a
    connect neither succeeds nor fails until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    for _ in range(16):  # a backlog of 0 still queues one or two: fill it until one hangs
        filler = socket.socket()
        filler.settimeout(0.3)
        fillers.append(filler)
        try:
            filler.connect(("127.0.0.1", port))
        except TimeoutError:
            break  # the queue is full: this SYN was dropped
    else:
        pytest.skip("this kernel never dropped a SYN on a full accept queue")
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_miner_that_never_completes_the_handshake_is_504(
    black_hole: int, org_a: OrgWorld, loopback_allowed: None, settings: Any
) -> None:
    settings.PROXY_CONNECT_TIMEOUT = 0.5

    def create() -> Miner:
        miner = Miner.unscoped.create(
            org=org_a.org,
            site=org_a.sites[0],
            identifier="serial:black-hole",
            name="black-hole",
            host="127.0.0.1",
            port=black_hole,
            scheme="http",
            driver="antminer",  # digest: no login round trip before the proxied request
            device_info={"ports": {"web": black_hole}},
        )
        credentials_store(miner, username="root", password="root")
        return miner

    miner = await sync_to_async(create)()
    viewer = await browser_for(org_a.users["viewer"])
    started = time.monotonic()
    reply = await viewer.call("GET", f"/api-proxy/miners/{miner.pk}/cgi-bin/stats.cgi")
    elapsed = time.monotonic() - started
    assert reply.status == 504 and reply.json()["error"] == "the miner did not answer in time"
    assert 0.4 < elapsed < 5, elapsed
