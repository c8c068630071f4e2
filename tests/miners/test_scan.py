"""The scanner (miners/scan.py) against simulated miners on their own 127.x addresses, mixed
with targets that refuse, accept but never answer, drop SYNs (filtered) or speak other HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from miners import Credentials
from miners.scan import Found, check_targets, port_open, scan
from miners.sim import SimFleet
from tests.miners.conftest import PORT_OFFSET

PORTS = [80 + PORT_OFFSET, 443 + PORT_OFFSET, 4028 + PORT_OFFSET]


def neighbour(fleet: SimFleet, n: int) -> str:
    """An address in the fleet's own /24 that no simulated miner uses."""
    base = ipaddress.ip_address(fleet.inventory[0]["host"])
    return str(ipaddress.ip_address(int(base) - int(base) % 256 + n))


def expected(fleet: SimFleet) -> set[tuple[str, int, str, str, str]]:
    found = set()
    for entry in fleet.inventory:
        driver = "protoos" if entry["kind"] == "protoos" else "antminer"
        for port in entry["ports"].values():
            found.add((entry["host"], port, driver, entry["serial"], entry["mac"]))
    return found


def seen(results: list[Found]) -> set[tuple[str, int, str, str, str]]:
    return {(f.host, f.port, f.driver, f.serial, f.mac) for f in results}


class Silent:
    """Listeners on loopback that accept a connection and never say a word."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.open = 0
        self.by_host: dict[str, int] = {}
        self.peak_hosts = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        self.open += 1
        self.by_host[host] = self.by_host.get(host, 0) + 1
        self.peak_hosts = max(self.peak_hosts, sum(1 for n in self.by_host.values() if n))
        self.writers.append(writer)
        try:
            await reader.read()  # until the scanner hangs up
        finally:
            self.open -= 1
            self.by_host[host] -= 1
            writer.close()

    async def listen(self, host: str, port: int) -> None:
        self.servers.append(await asyncio.start_server(self._handle, host, port))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for server in self.servers:
            server.close()
            await server.wait_closed()


class Filtered:
    """A port whose SYNs are dropped, like a firewall's: a listen(0) socket that never accepts,
    its one-slot backlog already full, so the kernel silently ignores further SYNs."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, port))
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    s = Silent()
    yield s
    await s.close()


async def collect(it: AsyncIterator[Found]) -> list[Found]:
    return [f async for f in it]


async def test_finds_exactly_the_simulated_miners_among_empty_addresses(
    sim_fleet: Callable[..., Awaitable[SimFleet]],
) -> None:
    fleet = await sim_fleet(proto=2, antminer=2)  # factory state: Antminer root/root
    hosts = [e["host"] for e in fleet.inventory] + [neighbour(fleet, n) for n in range(200, 210)]
    targets = [(h, p) for h in hosts for p in PORTS]
    calls: list[int] = []

    results = await collect(scan(targets, concurrency=16, progress=calls.append))

    assert seen(results) == expected(fleet)
    assert len(results) == len(expected(fleet))  # each target reported once
    assert calls == sorted(set(calls)) and calls[-1] == len(targets)  # every target counted once
    by_host = {(f.host, f.port): f for f in results}
    for entry in fleet.inventory:
        some = by_host[(entry["host"], next(iter(entry["ports"].values())))]
        assert some.model and some.make and some.firmware
        assert some.scheme in ("http", "https")


async def test_login_protected_identity_needs_the_rigs_credentials(
    sim_fleet: Callable[..., Awaitable[SimFleet]],
) -> None:
    fleet = await sim_fleet(antminer=1, password="s3cretpw!")
    entry = fleet.inventory[0]
    targets = [(entry["host"], entry["ports"]["rpc"])]

    anonymous = await collect(scan(targets))
    assert [(f.driver, f.serial, f.mac) for f in anonymous] == [("antminer", "", "")]
    assert anonymous[0].model  # the RPC `version` names the model without a login

    known = await collect(scan(targets, credentials=Credentials("s3cretpw!", username="root")))
    assert [(f.serial, f.mac) for f in known] == [(entry["serial"], entry["mac"])]


async def test_mostly_silent_targets_are_bounded_by_the_deadlines(
    sim_fleet: Callable[..., Awaitable[SimFleet]], silent: Silent
) -> None:
    fleet = await sim_fleet(proto=1, antminer=1)
    mute = [neighbour(fleet, n) for n in range(200, 240)]
    for host in mute:
        await silent.listen(host, PORTS[0])
    filtered = [Filtered(neighbour(fleet, n), PORTS[2]) for n in range(240, 250)]
    try:
        targets = [(h, p) for h in mute for p in PORTS]  # accept-and-hang, refused
        targets += [(f.sock.getsockname()[0], PORTS[2]) for f in filtered]  # dropped SYNs
        targets += [(e["host"], p) for e in fleet.inventory for p in PORTS]
        concurrency = 20
        started = time.monotonic()
        results = await collect(
            scan(targets, concurrency=concurrency, connect_timeout=0.4, identify_timeout=0.6)
        )
        elapsed = time.monotonic() - started
    finally:
        for f in filtered:
            f.close()

    assert seen(results) == expected(fleet)
    assert silent.peak_hosts <= concurrency  # a fixed pool, not one task per target
    # 40 hanging + 10 filtered targets over 20 workers: ~3 rounds of deadlines, not 50 in a row
    assert elapsed < 6.0, elapsed
    assert silent.open == 0  # every hanging connection was closed by the scanner


async def test_filtered_port_costs_the_connect_deadline_only() -> None:
    filtered = Filtered("127.99.250.7", 4028)
    try:
        started = time.monotonic()
        assert not await port_open("127.99.250.7", 4028, 0.3)
        assert 0.25 < time.monotonic() - started < 2.0
        assert not await port_open("127.99.250.8", 4028, 0.3)  # refused: at once
    finally:
        filtered.close()


async def test_other_http_servers_are_not_miners(
    sim_fleet: Callable[..., Awaitable[SimFleet]],
) -> None:
    fleet = await sim_fleet(proto=1, password="s3cretpw!")
    host = neighbour(fleet, 220)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(4096)
        if request[:4] in (b"GET ", b"POST", b"HEAD"):
            status, body = b"200 OK", b'{"hello": "world"}'
        else:  # a TLS hello or an RPC line on a plain HTTP port, as nginx answers it
            status, body = b"400 Bad Request", b'{"error": "bad request"}'
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, PORTS[0])
    try:
        started = time.monotonic()
        results = await collect(scan([(host, PORTS[0])], identify_timeout=5.0))
        elapsed = time.monotonic() - started
    finally:
        server.close()
        await server.wait_closed()
    assert results == []
    assert elapsed < 2.5  # a clear "not mine" from every driver, not the 5 s deadline


async def test_results_stream_before_the_scan_ends(
    sim_fleet: Callable[..., Awaitable[SimFleet]], silent: Silent
) -> None:
    fleet = await sim_fleet(proto=1, password="s3cretpw!")
    entry = fleet.inventory[0]
    mute = [neighbour(fleet, n) for n in range(200, 210)]
    for host in mute:
        await silent.listen(host, PORTS[0])
    targets = [(entry["host"], entry["ports"]["http"])] + [(h, PORTS[0]) for h in mute]

    started = time.monotonic()
    first_at: float | None = None
    async with contextlib.aclosing(
        scan(targets, concurrency=2, connect_timeout=0.5, identify_timeout=1.0)
    ) as it:
        async for found in it:
            assert found.host == entry["host"]
            first_at = time.monotonic() - started
    total = time.monotonic() - started
    assert first_at is not None
    assert total > 4.0  # 10 hanging targets over 2 workers, 1 s each
    assert first_at < 2.0


async def test_cancelling_the_consumer_stops_every_worker(silent: Silent) -> None:
    hosts = [f"127.99.251.{n}" for n in range(1, 41)]
    for host in hosts:
        await silent.listen(host, 4028)

    async def consume() -> list[Found]:
        return await collect(scan([(h, 4028) for h in hosts], concurrency=8))

    task = asyncio.create_task(consume())
    for _ in range(200):
        if silent.open == 8:
            break
        await asyncio.sleep(0.01)
    assert silent.open == 8  # the pool is busy on hanging targets
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("scan-")]
    for _ in range(200):
        if silent.open == 0:
            break
        await asyncio.sleep(0.01)
    assert silent.open == 0  # their sockets are closed, not left to the garbage collector


async def test_closing_the_iterator_early_stops_the_workers(
    sim_fleet: Callable[..., Awaitable[SimFleet]],
) -> None:
    fleet = await sim_fleet(proto=3, password="s3cretpw!")
    targets = [(e["host"], p) for e in fleet.inventory for p in PORTS]
    async with contextlib.aclosing(scan(targets, concurrency=4)) as it:
        async for _found in it:
            break
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("scan-")]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([("rig-7.lan", 80)], "not an IP address"),
        ([("10.0.0.1", 0)], "bad port"),
        ([("10.0.0.1", 70000)], "bad port"),
        ([("10.0.0.1", True)], "bad port"),
        ([("10.0.0.1", "80")], "bad port"),
        ([("10.0.0.1",)], "not a (host, port) pair"),
        ([(10, 80)], "IP address string"),
    ],
)
async def test_bad_targets_are_refused_before_any_io(targets: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await collect(scan(targets))


def test_targets_are_normalised() -> None:
    assert check_targets([("fd00::0001", 443), ("10.0.0.01".replace("01", "1"), 80)]) == [
        ("fd00::1", 443),
        ("10.0.0.1", 80),
    ]


async def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await collect(scan([("10.0.0.1", 80)], concurrency=0))
    with pytest.raises(ValueError, match="timeouts"):
        await collect(scan([("10.0.0.1", 80)], connect_timeout=0))
    assert await collect(scan([])) == []


async def test_a_socket_shortage_waits_instead_of_hiding_miners(
    sim_fleet: Callable[..., Awaitable[SimFleet]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import miners.scan as scan_module

    fleet = await sim_fleet(proto=1)
    entry = fleet.inventory[0]
    real = socket.socket
    refusals = {"left": 6}

    def short_of_files(*args: Any) -> socket.socket:
        if refusals["left"]:
            refusals["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real(*args)

    monkeypatch.setattr(scan_module, "_new_socket", short_of_files)
    results = await collect(scan([(entry["host"], entry["ports"]["http"])]))
    assert [(f.host, f.serial) for f in results] == [(entry["host"], entry["serial"])]
    assert refusals["left"] == 0


def test_workers_fit_the_open_files_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    import miners.scan as scan_module

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    assert scan_module.worker_budget(256) == (1024 - 128) // (scan_module.PER_HOST_CONNECTS + 4)
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (20000, 20000))
    assert scan_module.worker_budget(256) == 256


async def test_a_connect_the_loop_saw_too_late_still_counts(silent: Silent) -> None:
    """On a starved event loop the deadline can fire before the loop looks at a connect the
    kernel already completed: the port is open, not silent."""
    await silent.listen("127.99.254.1", 4028)
    assert all([await port_open("127.99.254.1", 4028, 1e-6) for _ in range(20)])
    assert not any([await port_open("127.99.254.2", 4028, 1e-6) for _ in range(20)])
