"""Driver building blocks without any miner: digest maths, token single-flight, value types,
the registry's ranking, the capability/deadline edges of `Device`."""

from __future__ import annotations

import asyncio
import json

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from miners.antminer import is_stock
from miners.base import Detail, Device, Driver, num
from miners.digest import authorization, parse_challenge
from miners.errors import (
    AuthFailed,
    BadResponse,
    DefaultPasswordActive,
    Rejected,
    Timeout,
    Unsupported,
)
from miners.http import HttpReply
from miners.protoos_client import error_for, firmware_message
from miners.registry import Registry
from miners.tokens import TokenCache
from miners.types import (
    Capability,
    Credentials,
    DeviceInfo,
    Hashboard,
    Health,
    MinerState,
    MinerStatus,
    Pool,
    PoolConfig,
    PoolStatus,
    Temperatures,
    assess_health,
)


def test_digest_matches_rfc2617_example():
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge is not None and challenge.qop == "auth"
    header = authorization(
        challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b"
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "nc=00000002" in authorization(challenge, "Mufasa", "x", "GET", "/", "c")


def test_digest_challenge_parsing_rejects_other_schemes():
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge(None) is None
    assert parse_challenge('Digest realm="antMiner Configuration"') is None  # no nonce
    legacy = parse_challenge('Digest realm="r", nonce="n"')
    assert legacy is not None and legacy.qop is None
    assert "qop" not in authorization(legacy, "u", "p", "GET", "/")


async def test_token_cache_single_flight_and_compare_and_drop():
    cache = TokenCache()
    logins = 0

    async def login() -> str:
        nonlocal logins
        logins += 1
        await asyncio.sleep(0.01)
        return f"t{logins}"

    tokens = await asyncio.gather(*(cache.obtain("rig", login) for _ in range(20)))
    assert set(tokens) == {"t1"} and logins == 1
    cache.invalidate("rig", "stale-token")  # someone else's old token: keep ours
    assert await cache.obtain("rig", login) == "t1"
    cache.invalidate("rig", "t1")
    assert await cache.obtain("rig", login) == "t2"


async def test_token_login_survives_a_cancelled_first_caller():
    cache = TokenCache()
    gate = asyncio.Event()

    async def login() -> str:
        await gate.wait()
        return "tok"

    first = asyncio.ensure_future(cache.obtain("rig", login))
    second = asyncio.ensure_future(cache.obtain("rig", login))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "tok"
    assert cache.peek("rig") == "tok"


async def test_token_cache_is_bounded():
    cache = TokenCache(max_entries=2)
    for key in "abc":
        await cache.obtain(key, lambda k=key: asyncio.sleep(0, k))
    assert cache.peek("a") is None and cache.peek("c") == "c"


def test_credentials_key_changes_with_password_and_hides_it():
    a, b = Credentials(password="hunter22"), Credentials(password="hunter23")
    assert a.cache_key != b.cache_key
    assert Credentials(password="x", version=7).cache_key == "v7"
    assert "hunter22" not in repr(a)


def test_status_and_info_are_json_serialisable():
    status = MinerStatus(
        health=Health.OK,
        state=MinerState.MINING,
        hashboards=[Hashboard(slot=1, hashrate_ths=1.5)],
        pools=[Pool("stratum+tcp://p:3333", "w", PoolStatus.ACTIVE)],
    )
    data = json.loads(json.dumps(status.to_dict()))
    assert data["state"] == "mining" and data["pools"][0]["status"] == "active"
    info = DeviceInfo("protoos", "10.0.0.1", 443, "Proto", "Rig", serial="S", ports={"a": 1})
    assert DeviceInfo.from_dict({**json.loads(json.dumps(info.to_dict())), "new": 1}) == info


@pytest.mark.parametrize(
    ("state", "kwargs", "health"),
    [
        (MinerState.MINING, {}, Health.OK),
        (MinerState.STOPPED, {}, Health.IDLE),
        (MinerState.ERROR, {}, Health.CRITICAL),
        (MinerState.MINING, {"hashboards": [Hashboard(slot=1, ok=False)]}, Health.WARNING),
        (MinerState.MINING, {"pools": [Pool("u", "w", PoolStatus.DEAD)]}, Health.WARNING),
        (MinerState.MINING, {"temperatures": Temperatures(chip_max_c=95)}, Health.WARNING),
        (MinerState.MINING, {"temperatures": Temperatures(chip_max_c=110)}, Health.CRITICAL),
    ],
)
def test_health(state, kwargs, health):
    args = {"hashboards": [], "pools": [], "temperatures": Temperatures(), "errors": []} | kwargs
    assert assess_health(state, **args) is health


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("13,500.5", 13500.5),
        (7, 7.0),
        ("x", None),
        (None, None),
        (True, None),
        (float("nan"), None),
    ],
)
def test_num_is_tolerant(raw, value):
    assert num(raw) == value


class SlowDevice(Device):
    capabilities = frozenset({Capability.REBOOT, Capability.POOLS})

    async def _do_status(self, detail: Detail) -> MinerStatus:
        await asyncio.sleep(5)
        raise AssertionError("deadline should have fired")

    async def _do_set_pools(self, pools: list[PoolConfig]) -> None:
        self.pools = pools


def _device(timeout: float = 0.05) -> SlowDevice:
    return SlowDevice(DeviceInfo("fake", "h", 1, "m", "x"), None, timeout)


async def test_every_call_is_bounded_by_the_device_deadline():
    with pytest.raises(Timeout, match="status"):
        await _device().status()


async def test_unsupported_capability_raises_before_any_io():
    device = _device()
    with pytest.raises(Unsupported, match="blink"):
        await device.blink(True)
    with pytest.raises(Unsupported):
        await device.set_power_target(watts=3000)
    with pytest.raises(ValueError):
        await device.set_power_target()


async def test_pool_count_is_checked():
    device = _device()
    with pytest.raises(Rejected):
        await device.set_pools([PoolConfig("u", "w")] * 4)
    with pytest.raises(Rejected):
        await device.set_pools([])
    await device.set_pools([PoolConfig("u", "w")])
    assert device.pools == [PoolConfig("u", "w")]


class FakeDriver(Driver):
    discovery_ports = (80,)

    def __init__(self, name: str, priority: int, delay: float, answer: bool) -> None:
        self.name, self.priority, self.delay, self.answer = name, priority, delay, answer
        self.cancelled = False

    async def _identify(self, host, port, credentials):
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return DeviceInfo(self.name, host, port, "m", "x") if self.answer else None

    def connect(self, info, credentials=None, *, timeout=1.0):
        raise NotImplementedError


async def test_registry_prefers_priority_over_speed():
    fast_adapter = FakeDriver("adapter", 100, 0.0, True)
    slow_own = FakeDriver("own", 10, 0.05, True)
    info = await Registry([fast_adapter, slow_own]).identify("h", 80)
    assert info is not None and info.driver == "own"


async def test_registry_falls_back_and_cancels_losers():
    own = FakeDriver("own", 10, 0.0, False)
    adapter = FakeDriver("adapter", 100, 0.0, True)
    never = FakeDriver("never", 200, 10.0, True)
    info = await Registry([own, adapter, never]).identify("h", 80)
    assert info is not None and info.driver == "adapter"
    assert never.cancelled


async def test_registry_none_when_nobody_answers():
    assert await Registry([FakeDriver("a", 1, 0.0, False)]).identify("h", 80) is None


async def test_pyasic_adapter_never_claims_a_refused_port(monkeypatch):
    """pyasic-rs identifies by host alone; our adapter must not answer for a port on which
    nothing listens (else `probe HOST:4028` of a ProtoOS rig "finds" a miner there)."""
    import socket

    from miners.pyasic_adapter import PyasicDriver

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections to it are refused

    async def never(*args, **kwargs):
        raise AssertionError("the library must not be asked")

    driver = PyasicDriver()
    monkeypatch.setattr(driver, "handle", never)
    assert await driver.identify("127.0.0.1", port, timeout=2) is None


def _reply(status: int, body: bytes) -> HttpReply:
    return HttpReply(status, CIMultiDictProxy(CIMultiDict()), body)


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (b'{"message": "power target out of range"}', "power target out of range", None),
        (
            b'{"error": {"code": "OUT_OF_RANGE", "message": "power target out of range"}}',
            "power target out of range",
            "OUT_OF_RANGE",
        ),
        (b"power target out of range\n", "power target out of range", None),
        (b"", "HTTP 422", None),
    ],
)
def test_protoos_error_bodies_in_all_three_shapes(body, message, code):
    assert firmware_message(_reply(422, body)) == (message, code)
    error = error_for(_reply(422, body), "PUT /mining/target")
    assert isinstance(error, Rejected) and message in error.message and error.code == code


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, b'{"error": {"code": "UNAUTHORIZED", "message": "x"}}', AuthFailed),
        (
            403,
            b'{"error": {"code": "DEFAULT_PASSWORD_ACTIVE", "message": "x"}}',
            DefaultPasswordActive,
        ),
        (403, b'{"message": "forbidden"}', AuthFailed),
        (404, b"not found", Unsupported),
        (501, b'{"error": {"code": "NOT_IMPLEMENTED", "message": "x"}}', Unsupported),
        (409, b'{"message": "update in progress"}', Rejected),
        (503, b'{"error": {"code": "POOL_UNREACHABLE", "message": "x"}}', Rejected),
        (500, b"Internal Server Error", BadResponse),
    ],
)
def test_protoos_statuses_map_to_typed_errors(status, body, kind):
    error = error_for(_reply(status, body), "call")
    assert type(error) is kind and error.status == status


@pytest.mark.parametrize(
    ("version", "stock"),
    [
        ({"Type": "Antminer S19 XP", "BMMiner": "1.0.0"}, True),
        ({"Type": "Antminer S19 XP", "LUXminer": "2024.1"}, False),
        ({"Type": "Antminer S19j Pro", "BOSminer": "bosminer-plus-tuner 0.9"}, False),
        ({"Type": "Antminer S19 (vnish 1.2.0)"}, False),
        ({"Type": "Whatsminer M30S"}, False),
        ({}, False),
    ],
)
def test_stock_antminer_recognition(version, stock):
    assert is_stock(version) is stock


def _antminer_replies(summary: dict, stats: dict, pools: list | None = None) -> dict:
    envelope = [{"STATUS": "S", "Code": 0, "Msg": "", "When": 0}]
    if pools is None:
        pools_reply = {"STATUS": [{"STATUS": "E", "Code": 8, "Msg": "No pools", "When": 0}]}
    else:
        pools_reply = {"STATUS": envelope, "POOLS": pools}
    return {
        "summary": {"STATUS": envelope, "SUMMARY": [summary]},
        "pools": pools_reply,
        "stats": {"STATUS": envelope, "STATS": [{"Type": "Antminer S21"}, stats]},
    }


def test_antminer_power_from_newer_stock_firmware():
    """Newer stock firmware reports the rig's power as `chain_power: "3250 W"` in stats."""
    from miners.antminer import parse_status

    pool = {"URL": "stratum+tcp://p:3333", "User": "u", "Status": "Alive",
            "Stratum Active": True, "Priority": 0}  # fmt: skip
    status = parse_status(
        _antminer_replies(
            {"Elapsed": 900, "GHS 5s": 200_000.0},
            {"chain_power": "3250 W", "chain_rate1": "200000", "chain_acn1": 108},
            [pool],
        )
    )
    assert status.power_w == 3250 and status.efficiency_jth == pytest.approx(16.25)


@pytest.mark.parametrize("elapsed", [30, 3600])
def test_antminer_without_pools_is_no_pools(elapsed):
    """Factory-fresh (cgminer answers `No pools`): never hashes, so neither `starting` during
    boot nor `unknown` later, but `no_pools`, the same word ProtoOS uses."""
    from miners.antminer import parse_status

    status = parse_status(
        _antminer_replies({"Elapsed": elapsed, "GHS 5s": 0.0}, {"chain_rate1": "0"}), mode=0
    )
    assert status.state is MinerState.NO_POOLS and status.health is Health.WARNING


def test_protoos_hashrate_is_current_not_the_run_average():
    from miners.protoos import parse_status

    def mining(status: str, running: int = 3) -> dict:
        return {"mining-status": {"status": status, "average_hashrate_ghs": 204_000.0,
                                  "hashboards_installed": 3, "hashboards_mining": running}}  # fmt: skip

    telemetry = {"miner": {"hashrate": {"value": 136.0, "unit": "TH/s"}}}
    assert parse_status(mining("DegradedMining", 2), None, telemetry=telemetry).hashrate_ths == 136
    assert parse_status(mining("Mining"), None).hashrate_ths == 204  # SUMMARY: the average
    assert parse_status(mining("Stopped", 0), None).hashrate_ths == 0
    assert parse_status(mining("Error", 0), None).hashrate_ths == 0
    assert parse_status(None, None, telemetry=telemetry).hashrate_ths is None  # 204
