"""``enroll`` against a scripted gateway: fingerprint check, waiting through 409, resume,
the refusals that must stop it; host health read from a fake /proc."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fleetnode import protocol
from fleetnode.backoff import Backoff
from fleetnode.enroll import EnrollError, enroll
from fleetnode.health import HostHealth
from fleetnode.state import State


class Gateway:
    def __init__(self) -> None:
        self.registrations: list[dict[str, Any]] = []
        self.credential_answers: list[tuple[int, dict[str, Any]]] = []
        self.fingerprint: str | None = None  # None: the real one
        self.url = ""

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registrations.append(body)
        key = protocol.b64decode(body["identity_key"], length=32)
        assert protocol.verify(key, protocol.b64decode(body["proof"]), body["code"].encode())
        fingerprint = self.fingerprint or protocol.fingerprint(key)
        return web.json_response(
            {"node_id": 7, "fingerprint": fingerprint, "status": "awaiting_confirmation"},
            status=201,
        )

    async def credentials(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["node_id"] == 7 and isinstance(body["ts"], int)
        status, answer = self.credential_answers.pop(0)
        return web.json_response(answer, status=status)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/api/v1/node-gateway/register", fake.register)
    app.router.add_post("/api/v1/node-gateway/credentials", fake.credentials)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


def quick() -> Backoff:
    return Backoff(base=0.01, cap=0.02, rng=random.Random(1))


async def test_enroll_prints_the_fingerprint_waits_and_stores_the_key(
    tmp_path: Path, gateway: Gateway
) -> None:
    waiting = {"detail": "Awaiting confirmation by an operator."}
    gateway.credential_answers = [(409, waiting), (409, waiting), (200, {"api_key": "rwk_abc"})]
    said: list[str] = []
    state = State(tmp_path / "s")
    config = await enroll(
        state, server=gateway.url, code="rwe_code", name="gw", say=said.append, backoff=quick()
    )
    assert config.node_id == 7 and state.api_key() == "rwk_abc"
    assert f"Fingerprint: {state.fingerprint()}" in said
    assert gateway.registrations[0]["name"] == "gw" and gateway.credential_answers == []
    with pytest.raises(EnrollError, match="already holds an enrolled node"):
        await enroll(state, server=gateway.url, code="x", name="gw", say=said.append)


async def test_an_interrupted_wait_resumes_without_the_code(
    tmp_path: Path, gateway: Gateway
) -> None:
    state = State(tmp_path / "s")
    gateway.credential_answers = [(409, {"detail": "Awaiting confirmation."})]
    with pytest.raises(EnrollError, match="nobody confirmed"):
        await enroll(
            state,
            server=gateway.url,
            code="rwe_code",
            name="gw",
            say=print,
            wait_s=0,
            backoff=quick(),
        )
    gateway.credential_answers = [(200, {"api_key": "rwk_later"})]
    said: list[str] = []
    await enroll(state, server=gateway.url, code=None, name="gw", say=said.append, backoff=quick())
    assert state.api_key() == "rwk_later" and len(gateway.registrations) == 1
    assert any("Resuming" in line for line in said)


@pytest.mark.parametrize(
    ("status", "message"),
    [(410, "already issued"), (403, "revoked this registration"), (401, "refused this node")],
)
async def test_final_refusals_stop_the_wait(
    tmp_path: Path, gateway: Gateway, status: int, message: str
) -> None:
    gateway.credential_answers = [(status, {"detail": "no"})]
    with pytest.raises(EnrollError, match=message):
        await enroll(
            State(tmp_path / "s"),
            server=gateway.url,
            code="c",
            name="gw",
            say=print,
            backoff=quick(),
        )


async def test_a_fingerprint_the_node_does_not_have_stops_enrollment(
    tmp_path: Path, gateway: Gateway
) -> None:
    gateway.fingerprint = "00" * 8
    with pytest.raises(EnrollError, match="changed the key"):
        await enroll(State(tmp_path / "s"), server=gateway.url, code="c", name="gw", say=print)


async def test_an_unreachable_server_is_a_message(tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match="can't reach"):
        await enroll(
            State(tmp_path / "s"), server="http://127.0.0.1:9", code="c", name="gw", say=print
        )


def test_host_health_from_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (proc / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n")
    (proc / "uptime").write_text("12345.67 999.0\n")
    health = HostHealth(tmp_path, proc=proc)
    (proc / "stat").write_text("cpu  150 0 150 900 0 0 0 0 0 0\n")
    reading = health.read()
    assert reading["cpu_percent"] == 50.0  # 100 busy of 200 jiffies since the last reading
    assert reading["memory_percent"] == 75.0
    assert reading["uptime_s"] == 12345
    assert 0 <= reading["disk_percent"] <= 100  # type: ignore[operator]
    (proc / "meminfo").write_text("garbage")
    (proc / "stat").write_text("")
    broken = health.read()
    assert broken["memory_percent"] is None and broken["cpu_percent"] is None
