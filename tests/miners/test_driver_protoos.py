"""The ProtoOS driver against simulated rigs: identify, status, every action, auth, token
sharing, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import pytest

from miners import (
    AuthFailed,
    BadResponse,
    Capability,
    CoolingMode,
    Credentials,
    DefaultPasswordActive,
    Detail,
    DeviceInfo,
    Health,
    HttpClient,
    MinerState,
    PoolConfig,
    PoolStatus,
    PowerMode,
    ProtoOSDriver,
    Rebooting,
    Rejected,
    Timeout,
    TokenCache,
    Unreachable,
    Unsupported,
)
from miners.sim import GroupSpec

PW = "s3cretpw!"
LABEL_PW = "Label-7F3K-92QX"


class CountingHttp(HttpClient):
    """Counts requests per (method, path) so tests can see logins and retries."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[str, str]] = Counter()

    async def request(self, method, url, **kwargs):
        self.calls[(method, url.split("/api/v1", 1)[-1])] += 1
        return await super().request(method, url, **kwargs)


@pytest.fixture
async def http_client():
    client = CountingHttp()
    yield client
    await client.close()


@pytest.fixture
def driver(http_client):
    return ProtoOSDriver(http_client)


async def connect(driver, entry, password=PW, https=True, timeout=5.0):
    port = entry["ports"]["https" if https else "http"]
    info = await driver.identify(entry["host"], port)
    assert info is not None
    creds = Credentials(password=password) if password else None
    return driver.connect(info, creds, timeout=timeout)


async def test_identify_on_https_and_http_ports(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto, antminer = fleet.inventory
    for scheme in ("https", "http"):
        info = await driver.identify(proto["host"], proto["ports"][scheme])
        assert info is not None
        assert (info.serial, info.mac, info.scheme) == (proto["serial"], proto["mac"], scheme)
        assert (info.driver, info.make, info.model, info.firmware) == (
            "protoos",
            "Proto",
            "Rig",
            "1.8.2",
        )
    assert await driver.identify(antminer["host"], antminer["ports"]["http"]) is None
    assert await driver.identify(antminer["host"], antminer["ports"]["rpc"], timeout=1) is None


async def test_identify_refused_port_is_none_and_fast(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    started = time.monotonic()
    assert await driver.identify(fleet.inventory[0]["host"], 9) is None
    assert time.monotonic() - started < 1


async def test_full_status(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    assert device.capabilities == frozenset(Capability)
    status = await device.status()
    assert status.state is MinerState.MINING and status.health is Health.OK
    assert status.hashrate_ths == pytest.approx(204, rel=0.1)
    assert status.ideal_hashrate_ths == pytest.approx(204, rel=0.01)
    assert status.power_w == pytest.approx(3500, rel=0.15) and status.power_target_w == 3500
    assert status.efficiency_jth and status.temperatures.chip_avg_c
    assert len(status.hashboards) == 3 and all(hb.ok and hb.serial for hb in status.hashboards)
    assert len(status.fans) == 4 and all(f.rpm for f in status.fans)
    assert [p.status for p in status.pools] == [PoolStatus.ACTIVE, PoolStatus.IDLE]
    assert status.pools[0].url == "stratum+tcp://stratum.sim-pool.example:3333"
    assert status.default_password_active is False
    assert status.power_mode is PowerMode.MAXIMUM_HASHRATE and status.errors == []
    assert status.uptime_s is not None


async def test_summary_status_is_two_requests(sim_fleet, driver, http_client):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    await device.status(Detail.SUMMARY)
    http_client.calls.clear()
    status = await device.status(Detail.SUMMARY)
    assert status.hashrate_ths and status.pools and not status.fans
    assert sum(http_client.calls.values()) == 2


async def test_no_statistics_yet_is_starting(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW, stats_delay=30)
    status = await (await connect(driver, fleet.inventory[0])).status()
    assert status.state is MinerState.STARTING and status.hashrate_ths is None


async def test_stop_start_and_power_target(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    await device.stop_mining()
    assert (await device.status(Detail.SUMMARY)).state is MinerState.STOPPED
    await device.start_mining()
    assert (await device.status(Detail.SUMMARY)).state in (MinerState.STARTING, MinerState.MINING)
    await device.set_power_target(watts=3000)
    assert (await device.status(Detail.SUMMARY)).power_target_w == 3000
    await device.set_power_target(mode=PowerMode.EFFICIENCY)
    assert (await device.status()).power_mode is PowerMode.EFFICIENCY
    with pytest.raises(Rejected) as caught:
        await device.set_power_target(watts=100_000)
    assert caught.value.status == 422 and caught.value.code and caught.value.message


async def test_hashrate_is_current_not_the_run_average(sim_fleet, driver, clock):
    """`average_hashrate_ghs` averages the whole run; a fleet manager needs what the rig does
    now: a dead board or a dead pool shows at once, a stopped rig hashes 0."""
    fleet = await sim_fleet(proto=1, password=PW, clock=clock)
    host = fleet.inventory[0]["host"]
    miner = fleet.miner(host)
    clock.advance(3600)  # an hour of full-speed hashing
    device = await connect(driver, fleet.inventory[0])
    nominal = miner.rate_ths()
    fleet.faults.set(host, "dead_board", board=0)
    status = await device.status(Detail.FULL)
    assert status.hashrate_ths == pytest.approx(nominal * 2 / 3, rel=0.05)
    fleet.faults.clear(host)
    fleet.faults.set(host, "dead_pool")
    assert (await device.status(Detail.SUMMARY)).hashrate_ths == 0
    assert (await device.status(Detail.FULL)).hashrate_ths == 0
    fleet.faults.clear(host)
    await device.stop_mining()
    for detail in (Detail.SUMMARY, Detail.FULL):
        status = await device.status(detail)
        assert status.state is MinerState.STOPPED and status.hashrate_ths == 0, detail
    await device.start_mining()
    clock.advance(10)
    status = await device.status(Detail.SUMMARY)
    assert status.hashrate_ths == pytest.approx(nominal, rel=0.05)


async def test_pools_replace_and_limits(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    wanted = [
        PoolConfig("stratum+tcp://a.example:3333", "alice.1", "x"),
        PoolConfig("stratum+tcp://b.example:3333", "bob.1", name="backup"),
    ]
    await device.set_pools(wanted)
    pools = (await device.status(Detail.SUMMARY)).pools
    assert [(p.url, p.user) for p in pools] == [(p.url, p.user) for p in wanted]
    with pytest.raises(Rejected):
        await device.set_pools(wanted * 2)
    with pytest.raises(Rejected) as caught:
        await device.set_pools([PoolConfig("stratum+tcp://a.example:99999", "u")])
    assert "port" in caught.value.message


async def test_cooling_blink_logs_reboot(sim_fleet, driver, clock):
    fleet = await sim_fleet(proto=1, password=PW, clock=clock)
    entry = fleet.inventory[0]
    device = await connect(driver, entry, timeout=2.0)
    await device.set_cooling(CoolingMode.MANUAL, speed_percent=90)
    assert {f.percent for f in (await device.status()).fans} == {90}
    with pytest.raises(Unsupported) as caught:
        await device.set_cooling(CoolingMode.OFF)
    assert caught.value.status == 501 and "immersion" in caught.value.message
    await device.blink(True, seconds=30)
    miner = fleet.miner(entry["host"])
    assert miner.locate_on(clock.now()) and not miner.locate_on(clock.now() + 30)
    await device.blink(False)
    assert not miner.locate_on(clock.now())
    lines = await device.logs(5, "os")
    assert 1 <= len(lines) <= 5 and all(isinstance(line, str) for line in lines)
    with pytest.raises(Rejected):
        await device.logs(5, "nonsense")
    await device.reboot()
    with pytest.raises(Unreachable):
        await device.status()
    clock.advance(fleet.timing.reboot_downtime)
    assert (await device.status(Detail.SUMMARY)).uptime_s == 0


async def test_wrong_password_is_auth_failed_with_firmware_message(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0], password="not-the-password")
    with pytest.raises(AuthFailed) as caught:
        await device.status()
    assert "Invalid password" in caught.value.message and caught.value.status == 401
    fleet.faults.set(fleet.inventory[0]["host"], "wrong_password")
    with pytest.raises(AuthFailed):
        await (await connect(driver, fleet.inventory[0])).reboot()


async def test_revoked_token_relogs_in_once(sim_fleet, driver, http_client, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    await device.status(Detail.SUMMARY)
    first = driver.tokens.peek(device.client.token_key)
    await proto(fleet.inventory[0]).login()  # someone else logs in: our token is revoked
    http_client.calls.clear()
    await device.status(Detail.SUMMARY)
    assert http_client.calls[("POST", "/auth/login")] == 1
    assert driver.tokens.peek(device.client.token_key) not in (None, first)


async def test_one_login_shared_by_concurrent_calls_and_devices(sim_fleet, driver, http_client):
    fleet = await sim_fleet(proto=1, password=PW)
    devices = [await connect(driver, fleet.inventory[0]) for _ in range(3)]
    http_client.calls.clear()
    await asyncio.gather(*(d.status() for d in devices for _ in range(5)))
    assert http_client.calls[("POST", "/auth/login")] == 1


async def test_factory_password_gate(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=None)
    device = await connect(driver, fleet.inventory[0], password=None)
    status = await device.status()
    assert status.default_password_active is True and status.state is MinerState.NO_POOLS
    with pytest.raises(DefaultPasswordActive) as caught:
        await device.stop_mining()
    assert caught.value.code == "DEFAULT_PASSWORD_ACTIVE" and caught.value.status == 403
    await device.set_pools([PoolConfig("stratum+tcp://a.example:3333", "w")])  # allowed
    creds = await device.change_password("first-real-pw")
    assert creds.password == "first-real-pw"
    assert (await device.status()).default_password_active is False
    await device.stop_mining()


async def test_change_password(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    entry = fleet.inventory[0]
    device = await connect(driver, entry)
    await device.status()
    await device.change_password("another-pw-1")
    assert (await device.status(Detail.SUMMARY)).hashrate_ths
    with pytest.raises(AuthFailed):
        await (await connect(driver, entry, password=PW)).status()


async def test_slow_rig_times_out_within_the_deadline(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0], timeout=0.3)
    fleet.faults.set(fleet.inventory[0]["host"], "slow", ms=3000)
    started = time.monotonic()
    with pytest.raises(Timeout):
        await device.status()
    assert time.monotonic() - started < 1.0
    assert await driver.identify(fleet.inventory[0]["host"], 443, timeout=0.3) is None


@pytest.mark.parametrize("https", [True, False])
async def test_garbage_and_500_are_bad_responses(sim_fleet, driver, https):
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]
    device = await connect(driver, fleet.inventory[0], https=https)
    fleet.faults.set(host, "garbage")
    with pytest.raises((BadResponse, Unreachable)):
        await device.status()
    fleet.faults.clear(host)
    fleet.faults.set(host, "http500")
    with pytest.raises(BadResponse) as caught:
        await device.status()
    assert caught.value.status == 500


async def test_offline_and_faults_reflected_in_health(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, password=PW)
    host = fleet.inventory[0]["host"]
    device = await connect(driver, fleet.inventory[0])
    fleet.faults.set(host, "dead_board", board=1)
    status = await device.status()
    assert status.state is MinerState.DEGRADED and status.health is Health.WARNING
    assert [hb.ok for hb in status.hashboards] == [True, False, True] and status.errors
    fleet.faults.clear(host)
    fleet.faults.set(host, "dead_pool")
    status = await device.status()
    assert status.health is Health.CRITICAL and {p.status for p in status.pools} == {
        PoolStatus.DEAD
    }
    fleet.faults.set(host, "offline")
    with pytest.raises(Unreachable):
        await device.status()


# -- real-firmware facts (miner-apis.md §1): each against a rig simulated both ways ------------

SV2_KEY = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"  # the spec's example key


@pytest.mark.parametrize("flavour", ["spec", "field"])
async def test_fan_speed_from_percentage_or_speed_percentage(sim_fleet, driver, proto, flavour):
    """Fact 1: the spec's fans carry `percentage`, field firmware's `speed_percentage`."""
    fleet = await sim_fleet(proto=1, password=PW, flavour=flavour)
    entry = fleet.inventory[0]
    raw = proto(entry)
    await raw.login()
    fan = (await raw.call("GET", "/api/v1/cooling"))[1]["cooling-status"]["fans"][0]
    assert ("speed_percentage" in fan) is (flavour == "field")
    device = await connect(driver, entry)
    await device.set_cooling(CoolingMode.MANUAL, speed_percent=70)
    fans = (await device.status()).fans
    assert len(fans) == 4 and {f.percent for f in fans} == {70}


@pytest.mark.parametrize("flavour", ["spec", "field"])
async def test_hashboard_and_psu_slots_are_the_rigs_own_numbers(sim_fleet, driver, flavour):
    """Fact 2: slots in `/hashboards`, `/hardware`, `/power-supplies` and `/errors` count from
    1 (telemetry's `index` from 0); the driver shows the rig's numbers, so the board a
    `/errors` entry names is the board marked not ok."""
    fleet = await sim_fleet(proto=1, password=PW, flavour=flavour)
    host = fleet.inventory[0]["host"]
    device = await connect(driver, fleet.inventory[0])
    status = await device.status()
    assert [hb.slot for hb in status.hashboards] == [1, 2, 3]
    assert [p.slot for p in status.psus] == [1, 2]
    fleet.faults.set(host, "dead_board", board=1)  # the second board: slot 2 on the rig
    status = await device.status()
    dead = [hb.slot for hb in status.hashboards if not hb.ok]
    reported = [e.slot for e in status.errors if e.code == "HashboardNotHashing"]
    assert dead == reported == [2]


async def test_label_password_factory_rig_reports_default_password(sim_fleet, driver, proto):
    """Fact 3: a factory rig whose label password isn't `proto` says `{onboarded: false,
    password_set: true}`; the gate is up, pool writes still work."""
    fleet = await sim_fleet(groups=[GroupSpec("protoos", 1, factory_password=LABEL_PW)])
    entry = fleet.inventory[0]
    _, body = await proto(entry).call("GET", "/api/v1/system/status", auth=False)
    assert body == {"onboarded": False, "password_set": True}
    device = await connect(driver, entry, password=LABEL_PW)
    status = await device.status()
    assert status.default_password_active is True and status.state is MinerState.NO_POOLS
    await device.set_pools([PoolConfig("stratum+tcp://a.example:3333", "w")])  # allowed
    with pytest.raises(DefaultPasswordActive):
        await device.set_power_target(watts=3000)
    await device.change_password("operator-pw-1")
    status = await device.status()
    assert status.default_password_active is False
    await device.set_power_target(watts=3000)


async def test_a_default_password_refusal_is_reported_by_the_device(sim_fleet, driver):
    """Fact 3: any 403 DEFAULT_PASSWORD_ACTIVE on a write means "default password active",
    even in a SUMMARY poll that doesn't read `/system/status`; a write that then succeeds
    (or a password change) clears it."""
    fleet = await sim_fleet(proto=1, password=None)
    device = await connect(driver, fleet.inventory[0], password=None)
    assert (await device.status(Detail.SUMMARY)).default_password_active is None  # not checked
    with pytest.raises(DefaultPasswordActive) as caught:
        await device.reboot()
    assert caught.value.kind == "default_password_active" and caught.value.status == 403
    assert (await device.status(Detail.SUMMARY)).default_password_active is True
    await device.set_pools([PoolConfig("stratum+tcp://a.example:3333", "w")])  # still allowed
    assert (await device.status(Detail.SUMMARY)).default_password_active is True
    await device.change_password("first-real-pw")
    assert (await device.status(Detail.SUMMARY)).default_password_active is None
    assert (await device.status()).default_password_active is False


@pytest.mark.parametrize("flavour", ["spec", "field"])
async def test_psu_fault_is_surfaced_from_power_supplies(sim_fleet, driver, proto, flavour):
    """Fact 4: field firmware shows a failed PSU only as `state: "Error"` in
    `/power-supplies` (`/errors` stays empty); the spec-shaped rig lists it in `/errors`.
    Either way: one PSU issue naming the rig's slot, health warning."""
    fleet = await sim_fleet(proto=1, password=PW, flavour=flavour)
    entry = fleet.inventory[0]
    fleet.faults.set(entry["host"], "psu_fault", psu=1)
    raw = proto(entry)
    await raw.login()
    errors = (await raw.call("GET", "/api/v1/errors"))[1]
    assert (errors == []) is (flavour == "field")
    status = await (await connect(driver, entry)).status()
    assert status.state is MinerState.MINING and status.health is Health.WARNING
    psu_issues = [e for e in status.errors if e.source == "psu"]
    assert len(psu_issues) == 1 and psu_issues[0].slot == 2
    if flavour == "field":
        assert [(p.slot, p.ok, p.state) for p in status.psus] == [
            (1, True, "Running"),
            (2, False, "Error"),
        ]
    assert status.psus[1].power_w == 0 and status.psus[0].power_w


async def test_a_rebooting_rig_is_identified_as_rebooting(sim_fleet, driver, clock):
    """Fact 5: during a reboot `/pairing/info` answers while `/system` drops the connection:
    a known rig that is rebooting, never "not a miner"; its status is `Rebooting`."""
    fleet = await sim_fleet(proto=1, password=PW, reboot_downtime=15, clock=clock)
    entry = fleet.inventory[0]
    device = await connect(driver, entry)
    await device.status()
    await device.reboot()
    for scheme in ("https", "http"):
        info = await driver.identify(entry["host"], entry["ports"][scheme])
        assert info is not None and info.state is MinerState.REBOOTING, scheme
        assert (info.serial, info.mac, info.scheme) == (entry["serial"], entry["mac"], scheme)
        assert DeviceInfo.from_dict(info.to_dict()).state is MinerState.REBOOTING
    with pytest.raises(Rebooting) as caught:
        await device.status()
    assert isinstance(caught.value, Unreachable) and caught.value.kind == "rebooting"
    clock.advance(15)
    info = await driver.identify(entry["host"], entry["ports"]["https"])
    assert info is not None and info.state is None and info.model == "Rig"
    assert (await device.status(Detail.SUMMARY)).uptime_s == 0
    fleet.faults.set(entry["host"], "offline")  # unplugged: plain Unreachable, not Rebooting
    with pytest.raises(Unreachable) as caught:
        await device.status()
    assert not isinstance(caught.value, Rebooting)


@pytest.mark.parametrize("flavour", ["spec", "field"])
async def test_hostname_comes_from_the_rig(sim_fleet, driver, proto, flavour):
    """Fact 6: the hostname is in `/network` and (field firmware) `system-info.os.hostname`;
    identity and status carry it, a rename shows in the next FULL status."""
    fleet = await sim_fleet(proto=1, password=PW, flavour=flavour)
    entry = fleet.inventory[0]
    expected = f"proto-{entry['serial'][-6:].lower()}"
    device = await connect(driver, entry)
    assert device.info.hostname == expected
    assert (await device.status()).hostname == expected
    assert (await device.status(Detail.SUMMARY)).hostname == expected  # from the identity
    raw = proto(entry)
    await raw.login()
    status, _ = await raw.call(
        "PUT", "/api/v1/network", json={"network-config": {"hostname": "rack7-rig3"}}
    )
    assert status == 200
    assert (await device.status()).hostname == "rack7-rig3"


async def test_hostname_from_system_info_when_network_lacks_it(sim_fleet, driver, monkeypatch):
    """Fact 6: `system-info.os.hostname` alone is enough (a firmware whose `/network` has
    no hostname)."""
    from miners.sim import proto_payloads

    real = proto_payloads.network_info

    def without_hostname(m):
        body = real(m)
        del body["network-info"]["hostname"]
        return body

    monkeypatch.setattr(proto_payloads, "network_info", without_hostname)
    fleet = await sim_fleet(proto=1, password=PW, flavour="field")
    entry = fleet.inventory[0]
    info = await driver.identify(entry["host"], entry["ports"]["http"])
    assert info is not None and info.hostname == f"proto-{entry['serial'][-6:].lower()}"


async def test_stratum_v2_pools_carry_the_authority_key(sim_fleet, driver, http_client):
    """Fact 7: a remote `stratum2+tcp://` pool needs its authority public key (the firmware
    refuses it without); the driver sends it, the status shows it; pool URLs are
    `stratum+tcp://` or `stratum2+tcp://` only."""
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    sv2 = PoolConfig("stratum2+tcp://sv2.example:3336", "acct.w1", authority_pubkey=SV2_KEY)
    backup = PoolConfig("stratum+tcp://v1.example:3333", "acct.w1")
    await device.set_pools([sv2, backup])
    pools = (await device.status(Detail.SUMMARY)).pools
    assert [(p.url, p.authority_pubkey) for p in pools] == [(sv2.url, SV2_KEY), (backup.url, None)]
    with pytest.raises(Rejected) as caught:
        await device.set_pools([PoolConfig("stratum2+tcp://sv2.example:3336", "acct.w1")])
    assert caught.value.status == 422 and "v2_authority_pubkey" in caught.value.message
    with pytest.raises(Rejected) as caught:
        await device.set_pools([dataclasses.replace(sv2, authority_pubkey=SV2_KEY[:-1] + "3")])
    assert caught.value.status == 422
    await device.set_pools([PoolConfig("stratum2+tcp://127.0.0.1:3336", "dev")])  # loopback
    http_client.calls.clear()
    for url in ("http://pool.example:3333", "stratum+ssl://pool.example:3333", "pool:3333"):
        with pytest.raises(Rejected) as caught:
            await device.set_pools([PoolConfig(url, "w")])
        assert caught.value.status is None  # refused before it reached the rig
    assert http_client.calls[("POST", "/pools")] == 0


async def test_expired_token_is_refreshed_not_replaced_by_a_login(
    sim_fleet, driver, http_client, clock
):
    """Fact 8: a 401 for an expired token is answered with `POST /auth/refresh`, not a new
    login (which would revoke the token other clients of the rig hold)."""
    fleet = await sim_fleet(proto=1, password=PW, token_ttl=3600, clock=clock)
    device = await connect(driver, fleet.inventory[0])
    await device.status(Detail.SUMMARY)
    http_client.calls.clear()
    clock.advance(3601)  # the rig's clock: our token expired there
    await device.status(Detail.SUMMARY)
    assert http_client.calls[("POST", "/auth/refresh")] == 1
    assert http_client.calls[("POST", "/auth/login")] == 0


async def test_token_about_to_expire_is_refreshed_before_use(sim_fleet, http_client, proto, clock):
    """Fact 8: lifetimes are read from the JWT (`exp - iat`); shortly before expiry the
    token is refreshed without a failed call, and the old token keeps working for whoever
    else holds it (a refresh revokes nothing)."""
    now = [1000.0]
    driver = ProtoOSDriver(http_client, TokenCache(clock=lambda: now[0]))
    fleet = await sim_fleet(proto=1, password=PW, token_ttl=3600, clock=clock)
    entry = fleet.inventory[0]
    device = await connect(driver, entry)
    await device.status(Detail.SUMMARY)
    old = driver.tokens.peek(device.client.token_key)
    http_client.calls.clear()
    now[0] += 3550  # 50 s left: inside the renewal margin (60 s) of a 1 h token
    clock.advance(3550)
    await device.status(Detail.SUMMARY)
    assert http_client.calls[("POST", "/auth/refresh")] == 1
    assert http_client.calls[("POST", "/auth/login")] == 0
    assert http_client.calls[("GET", "/pools")] == 1  # no 401, no retry
    fresh = driver.tokens.peek(device.client.token_key)
    assert fresh not in (None, old)
    raw = proto(entry)
    assert (await raw.call("GET", "/api/v1/mining", token=old))[0] == 200


async def test_failed_refresh_falls_back_to_one_login(sim_fleet, driver, http_client, proto):
    """Fact 8: someone else's login revoked our access and refresh tokens: the refresh is
    refused, one login follows, the call succeeds."""
    fleet = await sim_fleet(proto=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    await device.status(Detail.SUMMARY)
    await proto(fleet.inventory[0]).login()
    http_client.calls.clear()
    await device.status(Detail.SUMMARY)
    assert http_client.calls[("POST", "/auth/refresh")] == 1
    assert http_client.calls[("POST", "/auth/login")] == 1


async def test_chip_temperatures_are_the_asics_not_the_average(sim_fleet, driver, proto, clock):
    """Each board's chip temperature is its ASICs' (mean and hottest, as `/hashboards/{hb_sn}`
    reports them), and the status's `chip_max_c` is the hottest chip of the rig, above the
    `/mining` average (it was left empty, so "max temp" showed the average)."""
    fleet = await sim_fleet(proto=1, password=PW, clock=clock)
    entry = fleet.inventory[0]
    status = await (await connect(driver, entry)).status()
    raw = proto(entry)
    await raw.login()
    for board in status.hashboards:
        stats = (await raw.call("GET", f"/api/v1/hashboards/{board.serial}"))[1]["hashboard-stats"]
        assert board.chip_temp_max_c == pytest.approx(stats["max_asic_temp_c"], abs=0.06)
        assert board.chip_temp_c == pytest.approx(stats["avg_asic_temp_c"], abs=0.1)
        assert board.chips == 96
    temps = status.temperatures
    assert temps.chip_max_c == max(hb.chip_temp_max_c for hb in status.hashboards)
    assert temps.chip_avg_c is not None and temps.chip_max_c > temps.chip_avg_c + 1
