"""The telemetry model: plausible, deterministic per seed, lazily computed, reacting to actions."""

import time

import pytest

from miners.sim import FleetSpec, ManualClock, SimFleet, SpecError
from miners.sim.models import MODELS
from miners.sim.spec import identities
from miners.sim.state import Miner, Pool, Timing


def _miner(kind: str = "protoos", model: str = "Rig", seed: int = 1, now: float = 1000.0) -> Miner:
    m = Miner(kind=kind, index=0, host="127.0.0.1", ports={}, model=MODELS[model], serial="PRX",
              mac="02:00:00:00:00:00", password="pw", factory=False, seed=seed,
              timing=Timing(stats_delay=0.0), now=now)  # fmt: skip
    m.pools = [Pool("stratum+tcp://p.example", "u")]
    return m


def test_values_are_deterministic_per_seed_and_time():
    a, b, c = _miner(seed=1), _miner(seed=1), _miner(seed=2)
    t = 1500.0
    assert a.hashrate_ths(t) == b.hashrate_ths(t)
    assert a.asic_temps_c(t) == b.asic_temps_c(t)
    assert a.hashrate_ths(t) != c.hashrate_ths(t)
    samples = [a.hashrate_ths(t + 5 * i) for i in range(50)]
    assert len(set(samples)) > 10  # drifts
    assert all(abs(s / a.rate_ths() - 1) <= 0.02 for s in samples)  # around ideal


def test_power_follows_target_and_temperature_follows_power():
    m = _miner()
    t = 2000.0
    full_w, full_ths, full_temp = m.power_w(t), m.hashrate_ths(t), max(m.asic_temps_c(t))
    m.fan_mode, m.fan_pct = "Manual", 50
    hot = max(m.asic_temps_c(t))
    m.power_target_w = m.model.min_w
    assert m.power_w(t) < full_w / 2 and m.hashrate_ths(t) < full_ths
    assert max(m.asic_temps_c(t)) < hot
    assert m.power_w(t) / m.hashrate_ths(t) < full_w / full_ths  # lower power, better J/TH
    m.fan_mode = "Auto"
    m.power_target_w = m.model.nominal_w
    assert abs(max(m.asic_temps_c(t)) - full_temp) < 0.01
    assert m.fan_percent(t) > 0


def test_stopped_miner_hashes_nothing_and_idles():
    m = _miner()
    m.set_mining(False, 1100.0)
    assert m.hashrate_ths(1200.0) == 0 and m.power_w(1200.0) < 100
    ant = _miner("antminer", "Antminer S19 XP")
    ant.work_mode = 1
    assert ant.hashrate_ths(1200.0) == 0 and ant.power_w(1200.0) < 20


def test_shares_grow_only_while_hashing():
    m = _miner()
    pool = m.pools[0]
    a1 = m.shares(pool, 1100.0)[0]
    a2 = m.shares(pool, 1700.0)[0]
    assert a2 > a1 > 0
    m.set_mining(False, 1700.0)
    assert m.shares(pool, 2500.0)[0] == a2  # settled, no growth while stopped
    m.set_mining(True, 2500.0)
    assert m.shares(pool, 3100.0)[0] > a2


def test_average_hashrate_covers_the_current_mining_run_only():
    """average_hashrate_ghs / "GHS av" = hash count / time since mining started: a restart
    (start after stop, wake from sleep, first pools) begins a new run, not a huge average."""
    from miners.sim import antminer_payloads as ap
    from miners.sim import proto_payloads as pp

    m = _miner()
    m.set_mining(False, 4600.0)
    m.set_mining(True, 4610.0)
    status = pp.mining_status(m, 4620.0)
    assert status is not None
    average = status["mining-status"]["average_hashrate_ghs"] / 1000
    assert average == pytest.approx(m.rate_ths(), rel=0.001)
    assert status["mining-status"]["hw_errors"] < 5

    fresh = _miner(now=1000.0)
    fresh.pools = []
    fresh.set_pools([Pool("stratum+tcp://p.example", "u")], 5000.0)
    assert fresh.work_done(5010.0) == pytest.approx(fresh.rate_ths() * 10)
    figures = ap.Figures(fresh, 5010.0)
    assert figures.ghs_av / 1000 == pytest.approx(fresh.rate_ths(), rel=0.001)


def test_history_before_boot_is_synthesised():
    m = _miner(now=10_000.0)
    assert m.hashrate_ths(5_000.0) > 0  # before this boot: as configured now
    m.timing.stats_delay = 60
    assert m.hashrate_ths(10_030.0) == 0  # hashboards still coming up


def test_identities_are_unique_and_consecutive():
    spec = FleetSpec(proto=300, antminer=300, base="127.80.0.250", seed=9)
    ids = list(identities(spec))
    assert len({i.serial for i in ids}) == len({i.mac for i in ids}) == 600
    assert ids[0].host == "127.80.0.250" and ids[6].host == "127.80.1.0"
    assert ids[-1].host == "127.80.3.81"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"proto": 0, "antminer": 0},
        {"proto": 1, "base": "192.168.1.1"},
        {"proto": 2, "base": "127.255.255.254"},
        {"proto": 1, "password": "short"},
        {"antminer": 1, "antminer_model": "Antminer S99"},
        {"proto": 1, "flavour": "vendor"},
        {"proto": 1, "factory_password": "short"},
        {"proto": 1, "factory_password": "proto"},
        {"proto": 1, "password": "s3cretpw!", "factory_password": "Label-1234"},
    ],
)
def test_invalid_specs_are_refused(kwargs):
    with pytest.raises(SpecError):
        SimFleet(FleetSpec(**kwargs))


async def test_idle_fleet_does_no_work(sim_fleet):
    """Lazy model: a started fleet schedules no timers, so thousands of miners idle at ~0 CPU."""
    import asyncio

    fleet = await sim_fleet(proto=20, antminer=20)
    loop = asyncio.get_running_loop()
    assert not loop._scheduled  # type: ignore[attr-defined]
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.05
    assert len(fleet.miners) == 40


def test_manual_clock_runs_due_timers_in_order_each_at_its_own_time():
    clock = ManualClock(start=100.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(105.0, lambda: seen.append(("late", clock.now())))
    clock.call_at(102.0, lambda: seen.append(("early", clock.now())))
    clock.call_at(103.0, lambda: seen.append(("cancelled", clock.now()))).cancel()
    clock.call_at(200.0, lambda: seen.append(("later", clock.now())))
    clock.advance(10)
    assert seen == [("early", 102.0), ("late", 105.0)] and clock.now() == 110.0
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.mark.parametrize(
    "data",
    [
        {"proto": 1, "stats_delay": "soon"},
        {"proto": 1, "seed": "x"},
        {"proto": 1, "port_offset": "1"},
        {"groups": {"kind": "protoos"}},
        {"groups": [{"kind": "protoos", "count": True}]},
        {"groups": [{"kind": "protoos", "count": 1, "tls": "yes"}]},
    ],
)
def test_spec_mappings_with_wrong_types_are_refused(data):
    with pytest.raises(SpecError):
        FleetSpec.from_mapping(data).validate()
