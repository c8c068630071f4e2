"""The stock Antminer driver against simulated miners: RPC telemetry, digest-protected CGI
writes, work-mode mapping, faults."""

from __future__ import annotations

import time

import pytest

from miners import (
    AntminerDriver,
    AuthFailed,
    BadResponse,
    Capability,
    CoolingMode,
    Credentials,
    Detail,
    Health,
    HttpClient,
    MinerState,
    PoolConfig,
    PoolStatus,
    PowerMode,
    Timeout,
    Unreachable,
    Unsupported,
)

PW = "s3cretpw!"


@pytest.fixture
async def driver():
    http = HttpClient()
    yield AntminerDriver(http)
    await http.close()


async def connect(driver, entry, password=PW, timeout=5.0):
    creds = Credentials(password=password) if password else None
    info = await driver.identify(entry["host"], entry["ports"]["rpc"], credentials=creds)
    assert info is not None
    return driver.connect(info, creds, timeout=timeout)


async def test_identify_on_rpc_and_web_ports(sim_fleet, driver):
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto, entry = fleet.inventory
    creds = Credentials(password=PW)
    for port in (entry["ports"]["rpc"], entry["ports"]["http"]):
        info = await driver.identify(entry["host"], port, credentials=creds)
        assert info is not None and info.port == port
        assert (info.driver, info.make, info.model) == ("antminer", "Bitmain", "Antminer S19 XP")
        assert (info.serial, info.mac) == (entry["serial"], entry["mac"])
        assert info.ports == {"rpc": entry["ports"]["rpc"], "web": entry["ports"]["http"]}
        assert info.firmware
    blind = await driver.identify(entry["host"], entry["ports"]["rpc"])  # default root/root
    assert blind is not None and blind.serial is None  # serial lives behind the web login
    assert await driver.identify(proto["host"], proto["ports"]["http"]) is None
    assert await driver.identify(proto["host"], proto["ports"]["https"], timeout=1) is None
    assert await driver.identify(entry["host"], 9) is None


async def test_factory_rig_identifies_with_default_credentials(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=None)
    entry = fleet.inventory[0]
    info = await driver.identify(entry["host"], entry["ports"]["rpc"])
    assert info is not None and info.serial == entry["serial"]
    status = await driver.connect(info).status()
    assert status.default_password_active is True and status.pools == []
    # a rig without pools hashes nothing and never will: "no pools", as ProtoOS says it,
    # not "starting" (nor "unknown" once the boot grace period is over)
    for detail in (Detail.SUMMARY, Detail.FULL):
        status = await driver.connect(info).status(detail)
        assert status.state is MinerState.NO_POOLS and status.health is Health.WARNING


async def test_full_status(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    device = await connect(driver, fleet.inventory[0])
    assert Capability.POWER_TARGET_WATTS not in device.capabilities
    status = await device.status()
    assert status.state is MinerState.MINING and status.health is Health.OK
    assert status.hashrate_ths == pytest.approx(140, rel=0.1)
    assert status.ideal_hashrate_ths == pytest.approx(140, rel=0.01)
    assert status.power_w == pytest.approx(3010, rel=0.1)  # `chain_power` from stats
    assert len(status.hashboards) == 3 and all(b.ok and b.chips == 110 for b in status.hashboards)
    assert sum(b.hashrate_ths or 0 for b in status.hashboards) == pytest.approx(
        status.hashrate_ths, rel=0.05
    )
    assert len(status.fans) == 4 and status.temperatures.chip_max_c
    assert [p.status for p in status.pools] == [PoolStatus.ACTIVE, PoolStatus.IDLE]
    assert status.pools[0].user.startswith("rigwarden.")
    assert status.default_password_active is False
    assert status.power_mode is PowerMode.MAXIMUM_HASHRATE


async def test_quirky_firmware_output_parses(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW, quirks=True)
    status = await (await connect(driver, fleet.inventory[0])).status(Detail.SUMMARY)
    assert len(status.hashboards) == 3 and len(status.fans) == 4
    assert status.hashrate_ths == pytest.approx(140, rel=0.1)


async def test_summary_needs_no_web_credentials(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    device = await connect(driver, fleet.inventory[0], password="wrong-password")
    status = await device.status(Detail.SUMMARY)
    assert status.hashrate_ths and device.rpc.multi is True
    with pytest.raises(AuthFailed):
        await device.status(Detail.FULL)


async def test_work_modes_stop_start_and_power(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    device = await connect(driver, entry)
    await device.stop_mining()
    assert fleet.miner(entry["host"]).work_mode == 1
    status = await device.status()
    assert status.state is MinerState.SLEEPING and status.health is Health.IDLE
    assert (await device.status(Detail.SUMMARY)).state is MinerState.SLEEPING
    await device.start_mining()
    assert fleet.miner(entry["host"]).work_mode == 0
    await device.set_power_target(mode=PowerMode.EFFICIENCY)
    assert fleet.miner(entry["host"]).work_mode == 2
    assert (await device.status()).power_mode is PowerMode.EFFICIENCY
    await device.set_power_target(mode=PowerMode.MAXIMUM_HASHRATE)
    assert fleet.miner(entry["host"]).work_mode == 0
    with pytest.raises(Unsupported):
        await device.set_power_target(watts=3000)


async def test_pools_cooling_blink_logs(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    miner = fleet.miner(entry["host"])
    device = await connect(driver, entry)
    wanted = [PoolConfig("stratum+tcp://a.example:3333", "alice.1", "x")]
    await device.set_pools(wanted)
    pools = (await device.status(Detail.SUMMARY)).pools
    assert [(p.url, p.user) for p in pools] == [("stratum+tcp://a.example:3333", "alice.1")]
    await device.set_cooling(CoolingMode.MANUAL, speed_percent=70)
    assert (miner.fan_mode, miner.fan_pct) == ("Manual", 70)
    await device.set_cooling(CoolingMode.AUTO)
    assert miner.fan_mode == "Auto"
    with pytest.raises(Unsupported):
        await device.set_cooling(CoolingMode.OFF)
    await device.blink(True)
    assert miner.locate_on(fleet.clock.now())
    await device.blink(False)
    assert not miner.locate_on(fleet.clock.now())
    lines = await device.logs(20)
    assert 1 <= len(lines) <= 20
    with pytest.raises(Unsupported):
        await device.logs(5, "os")


async def test_reboot_and_change_password(sim_fleet, driver, clock):
    fleet = await sim_fleet(antminer=1, password=PW, clock=clock)
    entry = fleet.inventory[0]
    device = await connect(driver, entry, timeout=2.0)
    await device.reboot()
    with pytest.raises(Unreachable):
        await device.status(Detail.SUMMARY)
    clock.advance(fleet.timing.reboot_downtime)
    await device.status(Detail.SUMMARY)
    creds = await device.change_password("brand-new-pw")
    assert creds.password == "brand-new-pw" and creds.username == "root"
    await device.blink(False)  # works with the new password
    with pytest.raises(AuthFailed):
        await (await connect(driver, entry, password=PW)).blink(False)


async def test_wrong_password_fault(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    device = await connect(driver, entry)
    fleet.faults.set(entry["host"], "wrong_password")
    with pytest.raises(AuthFailed) as caught:
        await device.reboot()
    assert caught.value.status == 401


async def test_slow_rig_is_identified_within_the_identify_deadline(sim_fleet, driver):
    """A busy rig answering each request after 1 s: RPC version and the digest-protected
    system info run concurrently, and the 401 of the web probe is answered directly, so
    identification takes two round trips on either port, not three or four."""
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    fleet.faults.set(entry["host"], "slow", ms=1000)
    creds = Credentials(password=PW)
    for port in (entry["ports"]["rpc"], entry["ports"]["http"]):
        started = time.monotonic()
        info = await driver.identify(entry["host"], port, credentials=creds, timeout=2.7)
        assert info is not None, port
        assert info.serial == entry["serial"] and time.monotonic() - started < 2.7


async def test_timeouts_garbage_500_offline(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    host = fleet.inventory[0]["host"]
    device = await connect(driver, fleet.inventory[0], timeout=0.3)
    fleet.faults.set(host, "slow", ms=2000)
    started = time.monotonic()
    with pytest.raises(Timeout):
        await device.status(Detail.SUMMARY)
    with pytest.raises(Timeout):
        await device.blink(True)
    assert time.monotonic() - started < 1.5
    fleet.faults.clear(host)
    fleet.faults.set(host, "garbage")
    with pytest.raises(BadResponse):
        await device.status(Detail.SUMMARY)
    fleet.faults.clear(host)
    fleet.faults.set(host, "http500")
    with pytest.raises(BadResponse) as caught:
        await device.blink(True)
    assert caught.value.status == 500
    fleet.faults.clear(host)
    fleet.faults.set(host, "offline")
    with pytest.raises(Unreachable):
        await device.status(Detail.SUMMARY)


async def test_dead_board_and_dead_pool(sim_fleet, driver):
    fleet = await sim_fleet(antminer=1, password=PW)
    host = fleet.inventory[0]["host"]
    device = await connect(driver, fleet.inventory[0])
    fleet.faults.set(host, "dead_board", board=2)
    status = await device.status()
    assert status.state is MinerState.DEGRADED and status.health is Health.WARNING
    assert [b.ok for b in status.hashboards] == [True, True, False]
    assert status.errors[0].slot == 3
    fleet.faults.clear(host)
    fleet.faults.set(host, "dead_pool")
    status = await device.status()
    assert {p.status for p in status.pools} == {PoolStatus.DEAD}
    assert status.health is not Health.OK
