"""Driver building blocks without any miner: digest maths, token single-flight, value types,
the registry's ranking, the capability/deadline edges of `Device`."""

from __future__ import annotations

import asyncio
import base64
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
    Rebooting,
    Rejected,
    Timeout,
    Unreachable,
    Unsupported,
)
from miners.http import HttpReply
from miners.protoos import check_pool_url, default_password_state, parse_status
from miners.protoos_client import error_for, firmware_message
from miners.registry import Registry
from miners.tokens import Grant, Token, TokenCache, jwt_lifetime
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
    Psu,
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


# -- ProtoOS real-firmware facts, unit level ---------------------------------------------------


def _jwt(claims: dict) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{b64(b'{}')}.{b64(json.dumps(claims).encode())}.sig"


def test_jwt_lifetime_prefers_exp_minus_iat_and_ignores_garbage():
    assert jwt_lifetime(_jwt({"iat": 1_700_000_000, "exp": 1_700_003_600})) == 3600
    assert jwt_lifetime(_jwt({"exp": 2_000}), wall_now=1_000) == 1000  # no iat: our clock
    for token in ("opaque-token", _jwt({"sub": "admin"}), _jwt({"exp": "soon"}), "a.%%%.c",
                  _jwt({"iat": 10, "exp": 5}), _jwt({"exp": True, "iat": 0})):  # fmt: skip
        assert jwt_lifetime(token) is None, token


async def test_token_cache_refreshes_before_expiry_and_falls_back_to_login():
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0], default_ttl=100)
    calls: list[str] = []

    async def login() -> Grant:
        calls.append("login")
        await asyncio.sleep(0.01)
        return Grant(_jwt({"iat": 0, "exp": 1000, "n": len(calls)}), "refresh-1")

    async def refresh(token: str) -> Grant:
        calls.append(f"refresh:{token}")
        await asyncio.sleep(0.01)
        if token != "refresh-1":
            raise AuthFailed("refresh refused", status=401)
        return Grant(f"opaque-{len(calls)}")

    first = await cache.obtain("rig", login, refresh)
    assert calls == ["login"] and await cache.obtain("rig", login, refresh) == first
    now[0] = 950  # past exp - min(60, 1000 / 10): renewal time, concurrent callers share it
    tokens = await asyncio.gather(*(cache.obtain("rig", login, refresh) for _ in range(10)))
    assert calls == ["login", "refresh:refresh-1"] and set(tokens) == {"opaque-2"}
    entry = cache.get("rig")
    assert entry is not None and entry.via == "refresh" and entry.refresh == "refresh-1"
    assert entry.renew_at == pytest.approx(950 + 100 - 10)  # opaque: the default lifetime
    renewed = await cache.renew("rig", "someone-elses-old-token", login, refresh)
    assert renewed.access == "opaque-2" and len(calls) == 2  # a neighbour's 401: keep ours
    renewed = await cache.renew("rig", "opaque-2", login, refresh, force_login=True)
    assert calls[-1] == "login" and renewed.via == "login"


async def test_token_cache_logs_in_when_the_refresh_token_is_refused():
    cache = TokenCache()

    async def login() -> Grant:
        return Grant("fresh", "r2")

    async def refresh(token: str) -> Grant:
        raise AuthFailed("refresh token revoked", status=401)

    cache._tokens["rig"] = Token("old", "r1", 0.0, None, "login")  # stale, with a refresh token
    assert await cache.obtain("rig", login, refresh) == "fresh"

    async def unreachable(token: str) -> Grant:
        raise Unreachable("rig went away", code="ECONNREFUSED")

    cache._tokens["rig"] = Token("old", "r1", 0.0, None, "login")
    with pytest.raises(Unreachable):  # a login wouldn't get through either: no second try
        await cache.obtain("rig", login, unreachable)


@pytest.mark.parametrize(
    ("status", "body", "message", "code", "kind"),
    [
        (403, b'{"error": {"code": "DEFAULT_PASSWORD_ACTIVE", "message": "Change it"}}',
         "Change it", "DEFAULT_PASSWORD_ACTIVE", DefaultPasswordActive),
        (403, b'{"message": "Change the password", "code": "DEFAULT_PASSWORD_ACTIVE"}',
         "Change the password", "DEFAULT_PASSWORD_ACTIVE", DefaultPasswordActive),
        (403, b"DEFAULT_PASSWORD_ACTIVE: change the default password\n",
         "DEFAULT_PASSWORD_ACTIVE: change the default password", "DEFAULT_PASSWORD_ACTIVE",
         DefaultPasswordActive),
        (403, b'{"error": "forbidden", "code": "FORBIDDEN"}', "forbidden", "FORBIDDEN", AuthFailed),
        (422, b'"power target out of range"', "power target out of range", None, Rejected),
        (422, b'{"code": "OUT_OF_RANGE"}', "OUT_OF_RANGE", "OUT_OF_RANGE", Rejected),
        (400, b'{"error": {"code": "INVALID_REQUEST"}, "message": "bad url"}', "bad url",
         "INVALID_REQUEST", Rejected),
        (500, b"\xff\xfe garbage", "\ufffd\ufffd garbage", None, BadResponse),
        (422, b"[1, 2]", "HTTP 422", None, Rejected),
    ],
)  # fmt: skip
def test_protoos_error_body_variants(status, body, message, code, kind):
    assert firmware_message(_reply(status, body)) == (message, code)
    error = error_for(_reply(status, body), "call")
    assert type(error) is kind and error.code == code and message in error.message


def test_protoos_parsing_of_field_drift():
    fans = {"cooling-status": {"fans": [{"slot": 1, "rpm": 3000, "speed_percentage": 0},
                                        {"slot": 2, "rpm": 3100, "percentage": 55}]}}  # fmt: skip
    telemetry = {"hashboards": [{"index": 0, "serial_number": "B", "hashrate": {"value": 60}},
                                {"index": 1, "serial_number": "C", "hashrate": {"value": 61}}]}  # fmt: skip
    boards = {"hashboards-info": [{"hb_sn": "B", "slot": 2}, {"hb_sn": "C", "slot": 3}]}
    supplies = {"psus_info": [{"slot": 1, "psu_sn": "P1", "state": "Running",
                               "power": {"output_power_mw": 1_700_000}},
                              {"slot": 2, "psu_sn": "P2", "state": "Error"}]}  # fmt: skip
    mining = {"mining-status": {"status": "Mining", "hashboards_installed": 2,
                                "hashboards_mining": 2}}  # fmt: skip
    status = parse_status(
        mining, {"pools": []}, telemetry=telemetry, cooling=fans, errors=[],
        hashboards_info=boards, power_supplies=supplies,
        system_status={"onboarded": False, "password_set": True},
        network={"network-info": {"hostname": "rig-a"}},
    )  # fmt: skip
    assert [f.percent for f in status.fans] == [0, 55]
    assert [hb.slot for hb in status.hashboards] == [2, 3]  # the rig's slots, by serial
    assert [hb.slot for hb in parse_status(mining, None, telemetry=telemetry).hashboards] == [1, 2]
    assert [(p.slot, p.ok, p.power_w) for p in status.psus] == [(1, True, 1700.0), (2, False, None)]
    assert [(e.source, e.slot, e.code) for e in status.errors] == [("psu", 2, "PSU_FAULT")]
    assert status.health is Health.WARNING
    assert status.default_password_active is True and status.hostname == "rig-a"
    duplicate = [{"source": "psu", "slot": 2, "error_code": "PsuFault", "message": "PSU 2"}]
    again = parse_status(mining, None, errors=duplicate, power_supplies=supplies)
    assert [e.code for e in again.errors] == ["PsuFault"]  # the firmware's own, not twice


@pytest.mark.parametrize(
    ("system_status", "factory", "gate", "expected"),
    [
        (None, False, False, None),
        (None, False, True, True),
        ({"onboarded": True, "password_set": True}, False, False, False),
        ({"onboarded": False, "password_set": True}, False, False, True),
        ({"onboarded": True, "password_set": False}, False, False, True),
        ({"onboarded": True, "password_set": True}, True, False, True),
        ({"onboarded": True, "password_set": True}, False, True, True),
    ],
)
def test_default_password_state(system_status, factory, gate, expected):
    assert (
        default_password_state(system_status, factory_password=factory, gate_seen=gate) is expected
    )


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("stratum+tcp://pool.example:3333", True),
        ("stratum2+tcp://pool.example", True),
        ("stratum+tcp://[fd00::1]:3333", True),
        ("stratum+ssl://pool.example:3333", False),
        ("http://pool.example", False),
        ("pool.example:3333", False),
        ("stratum+tcp://:3333", False),
        ("stratum+tcp://pool.example:0", False),
        ("stratum+tcp://pool.example:99999", False),
        ("stratum+tcp://pool.example:3333/path", False),
    ],
)
def test_pool_url_check(url, ok):
    if ok:
        check_pool_url(url)
    else:
        with pytest.raises(Rejected):
            check_pool_url(url)


def test_new_fields_round_trip():
    info = DeviceInfo("protoos", "h", 443, "Proto", "Rig", hostname="r", state=MinerState.REBOOTING)
    data = json.loads(json.dumps(info.to_dict()))
    assert data["state"] == "rebooting" and DeviceInfo.from_dict(data) == info
    assert DeviceInfo.from_dict({**data, "state": "bogus"}).state is None
    assert PoolConfig("stratum2+tcp://p", "w").authority_pubkey == ""
    status = MinerStatus(Health.OK, MinerState.MINING, psus=[Psu(1, ok=False)], hostname="r")
    assert json.loads(json.dumps(status.to_dict()))["psus"][0]["ok"] is False
    kwargs = {"hashboards": [], "pools": [], "temperatures": Temperatures(), "errors": []}
    assert assess_health(MinerState.MINING, psus=[Psu(1, ok=False)], **kwargs) is Health.WARNING
    assert assess_health(MinerState.REBOOTING, **kwargs) is Health.UNKNOWN
    assert issubclass(Rebooting, Unreachable) and Rebooting("x").kind == "rebooting"


def test_chip_temperatures_from_the_spec_telemetry_example() -> None:
    """The spec's own `TelemetryData` example (repo copy): `hashboards[].asics.temperature`
    is one value per ASIC; the board's `temperature` is its PCB sensors (inlet, outlet,
    average), not its chips."""
    from pathlib import Path

    spec = json.loads(
        (Path(__file__).parents[2] / "specs" / "protoos-mdk-api-1.8.2.json").read_text()
    )
    schema = spec["components"]["schemas"]["TelemetryData"]["properties"]
    telemetry = {"hashboards": schema["hashboards"]["example"]}
    mining = {"mining-status": {"status": "Mining", "average_asic_temp_c": 70.1}}
    status = parse_status(mining, {"pools": []}, telemetry=telemetry)
    (board,) = status.hashboards
    assert (board.chip_temp_c, board.chip_temp_max_c, board.chips) == (72.8, 73.0, 2)
    assert board.board_temp_c == 56.85
    assert status.temperatures.chip_max_c == 73.0 and status.temperatures.chip_avg_c == 70.1
    without = parse_status(
        {"mining-status": {"status": "Mining"}}, {"pools": []}, telemetry=telemetry
    )
    assert without.temperatures.chip_avg_c == 72.8  # the boards' when /mining has none
