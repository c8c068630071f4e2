"""What identification costs per rig (the scanner's hot path): the ProtoOS driver asks over the
right scheme first for the port (plain http on 80/8080, https elsewhere), reuses the one
connection ``/pairing/info`` opened, reads ``/network`` only when ``/system`` didn't name the
host — and still finds every rig exactly as before, whichever scheme a port really speaks."""

from __future__ import annotations

from typing import Any

import pytest

from miners.http import HttpClient, HttpReply
from miners.protoos import ProtoOSDriver
from miners.protoos_client import PLAIN_HTTP_PORTS, ProtoOSClient
from miners.scan import scan
from miners.tokens import TokenCache
from tests.miners.conftest import PORT_OFFSET


class Counting(HttpClient):
    """The scan's client (one connection per rig), recording each request and connection."""

    def __init__(self) -> None:
        super().__init__(limit_per_host=1, keepalive_timeout=2.0)
        self.urls: list[str] = []

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpReply:
        self.urls.append(url)
        return await super().request(method, url, **kwargs)


@pytest.fixture
async def counting() -> Any:
    client = Counting()
    yield client
    await client.close()


def paths(urls: list[str]) -> list[str]:
    return [u.split("://", 1)[0] + " " + u.split("/api/v1", 1)[1] for u in urls]


def test_the_scheme_order_follows_the_port() -> None:
    def order(port: int) -> tuple[str, str]:
        return ProtoOSClient(HttpClient(), TokenCache(), "10.0.0.1", port).schemes_to_try()

    assert frozenset({80, 8080}) == PLAIN_HTTP_PORTS
    assert order(80) == order(8080) == ("http", "https")
    assert order(443) == order(4443) == order(20080) == ("https", "http")


@pytest.mark.skipif(PORT_OFFSET != 0, reason="the real ports 80/443 need root")
async def test_a_factory_rig_costs_three_requests_per_port_and_no_failed_handshake(
    sim_fleet: Any, counting: Counting
) -> None:
    fleet = await sim_fleet(proto=1)
    entry = fleet.inventory[0]
    driver = ProtoOSDriver(counting)
    for scheme, port in (("http", 80), ("https", 443)):
        counting.urls.clear()
        info = await driver.identify(entry["host"], port)
        assert info is not None
        assert (info.serial, info.mac, info.scheme, info.port) == (
            entry["serial"],
            entry["mac"],
            scheme,
            port,
        )
        assert (info.make, info.model, info.firmware) == ("Proto", "Rig", "1.8.2")
        assert info.hostname  # from /network: the spec's /system names no host
        assert paths(counting.urls) == [
            f"{scheme} /pairing/info",
            f"{scheme} /system",
            f"{scheme} /network",
        ]


async def test_field_firmware_names_its_host_so_network_is_not_read(
    sim_fleet: Any, counting: Counting
) -> None:
    fleet = await sim_fleet(proto=1, flavour="field")
    entry = fleet.inventory[0]
    info = await ProtoOSDriver(counting).identify(entry["host"], entry["ports"]["https"])
    assert info is not None and info.hostname and info.hostname.startswith("proto-")
    assert paths(counting.urls) == ["https /pairing/info", "https /system"]


async def test_the_other_scheme_is_still_tried_on_the_same_port(
    sim_fleet: Any, counting: Counting
) -> None:
    """TLS on 8080 (https first would be wrong there) and plain http on a port that isn't
    80/8080: each found, with the scheme that answered."""
    fleet = await sim_fleet(proto=1, port_offset=8080 - 443)  # https on 8080, http on 7717
    entry = fleet.inventory[0]
    assert entry["ports"]["https"] == 8080
    driver = ProtoOSDriver(counting)
    tls = await driver.identify(entry["host"], 8080)
    assert tls is not None and tls.scheme == "https" and tls.serial == entry["serial"]
    assert paths(counting.urls)[:2] == ["http /pairing/info", "https /pairing/info"]
    counting.urls.clear()
    plain = await driver.identify(entry["host"], entry["ports"]["http"])
    assert plain is not None and plain.scheme == "http" and plain.mac == entry["mac"]
    assert paths(counting.urls)[:2] == ["https /pairing/info", "http /pairing/info"]


async def test_a_scan_still_finds_every_port_exactly(sim_fleet: Any) -> None:
    fleet = await sim_fleet(proto=2, antminer=2)
    ports = [80 + PORT_OFFSET, 443 + PORT_OFFSET, 4028 + PORT_OFFSET, 8080 + PORT_OFFSET]
    targets = [(e["host"], p) for e in fleet.inventory for p in ports]
    found = [f async for f in scan(targets)]
    got = {(f.host, f.port, f.driver, f.scheme, f.serial, f.mac, f.model) for f in found}
    want = set()
    for e in fleet.inventory:
        for name, port in e["ports"].items():
            if e["kind"] == "protoos":
                want.add((e["host"], port, "protoos", name, e["serial"], e["mac"], "Rig"))
            else:
                scheme = "tcp" if name == "rpc" else "http"  # what the port speaks
                want.add((e["host"], port, "antminer", scheme, e["serial"], e["mac"], e["model"]))
    assert got == want and len(found) == len(want)


@pytest.mark.skipif(PORT_OFFSET != 0, reason="the real ports 80/443 need root")
async def test_the_second_port_of_a_rig_is_proven_with_one_read(
    sim_fleet: Any, counting: Counting
) -> None:
    """443 is identified in full; on 80 one `/pairing/info` naming the same MAC and serial
    proves the same rig (no /system, /network, nor the Antminer driver's `GET /`), and what is
    reported for 80 is exactly what a full identify of 80 gives."""
    from miners import Registry, default_drivers

    fleet = await sim_fleet(proto=1)
    entry = fleet.inventory[0]
    registry = Registry(default_drivers(include_pyasic=False, http=counting))
    found = [f async for f in scan([(entry["host"], 443), (entry["host"], 80)], registry=registry)]
    assert paths(counting.urls) == [
        "https /pairing/info",
        "https /system",
        "https /network",
        "http /pairing/info",
    ]
    full = await ProtoOSDriver(counting).identify(entry["host"], 80)
    assert full is not None
    by_port = {f.port: f for f in found}
    assert set(by_port) == {80, 443}
    assert by_port[80] == by_port[80].from_info(full, entry["host"], 80)
    assert by_port[443].scheme == "https" and by_port[80].scheme == "http"


async def test_another_rig_behind_the_second_port_is_not_taken_for_the_first(
    sim_fleet: Any, counting: Counting
) -> None:
    fleet = await sim_fleet(proto=2)
    first, second = fleet.inventory
    driver = ProtoOSDriver(counting)
    known = await driver.identify(first["host"], first["ports"]["https"])
    assert known is not None
    proven = await driver.same_device(first["host"], first["ports"]["http"], known)
    assert proven is not None and (proven.port, proven.scheme) == (first["ports"]["http"], "http")
    assert (proven.serial, proven.mac, proven.model) == (known.serial, known.mac, known.model)
    other = await driver.same_device(second["host"], second["ports"]["http"], known)
    assert other is None  # a different MAC/serial: the scanner identifies it in full
    nothing = await driver.same_device(first["host"], 9, known)  # refused
    assert nothing is None
