"""The demo fleet: the plan (sites, names, faults), the bulk import service and the
``seed_demo_fleet`` command against simulated rigs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.actor import Actor
from accounts.errors import ApplicationError, Forbidden
from accounts.models import ActivityEvent, Site
from fleet.demo import plan
from fleet.demo.launcher import DemoError, settings_from, sim_network
from fleet.models import Miner
from fleet.services.credentials import credentials_for
from fleet.services.imports import MinerImport, miners_import
from miners import DeviceInfo
from tests.conftest import OrgWorld
from tests.fleet.conftest import PASSWORD, ThreadedFleet

SYSTEM = Actor.system("test")


def fake_inventory(proto: int, antminer: int) -> list[dict[str, Any]]:
    entries = []
    for i in range(proto + antminer):
        kind = "protoos" if i < proto else "antminer"
        ports = (
            {"http": 10080, "https": 10443} if kind == "protoos" else {"http": 10080, "rpc": 14028}
        )
        entries.append(
            {
                "kind": kind,
                "host": f"127.78.{i // 250}.{i % 250 + 1}",
                "ports": ports,
                "serial": f"SN{i:05d}",
                "mac": f"02:00:00:00:{i // 256:02X}:{i % 256:02X}",
                "model": "Rig" if kind == "protoos" else "Antminer S19 XP",
                "password": "rigwarden-sim-1",
            }
        )
    return entries


def test_plan_splits_each_kind_over_the_sites_with_names_and_racks() -> None:
    demo = plan.plan(fake_inventory(200, 100))
    north = [m for m in demo if m.site == "north"]
    assert len(north) == 150 and sum(m.driver == "antminer" for m in north) == 50
    assert north[0].name == "north-rig-001" and (north[0].rack, north[0].position) == ("Row A", "1")
    assert north[20].rack == "Row B"
    south_s19 = [m for m in demo if m.site == "south" and m.driver == "antminer"]
    assert south_s19[0].name == "south-s19xp-001" and south_s19[0].rack.startswith("Container")
    assert len({m.name for m in demo}) == 300
    info = south_s19[0].inventory_info()
    assert (info.driver, info.make, info.port, info.ports["rpc"]) == (
        "antminer",
        "Bitmain",
        10080,
        14028,
    )
    proto = demo[0].inventory_info()
    assert (proto.port, proto.scheme) == (10443, "https")
    assert demo[-1].credentials.username == "root" and demo[0].credentials.username is None


def test_a_few_faults_spread_over_the_fleet() -> None:
    chosen = plan.faults(fake_inventory(200, 100))
    assert [kind for _, kind, _ in chosen] == [
        "offline",
        "overheat",
        "slow",
        "dead_board",
        "dead_pool",
    ]
    assert len({host for host, _, _ in chosen}) == 5
    assert plan.faults(fake_inventory(4, 2)) == []  # a handful of miners stays healthy
    assert [k for _, k, _ in plan.faults(fake_inventory(16, 8))] == ["offline", "overheat"]
    single = [{**e, "id": e["host"], "host": "127.0.0.1"} for e in fake_inventory(20, 10)]
    assert {host for host, _, _ in plan.faults(single)} <= {e["id"] for e in single}


def test_launcher_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_from({"DEMO_PROTO": "4", "DEMO_ANTMINER": "2", "DATA_DIR": "/tmp/x"})
    assert (s.total, s.port_offset, s.base, s.faults) == (6, 10000, "127.78.0.1", True)
    assert sim_network(s, single=False) == "127.78.0.0/29"
    assert sim_network(s, single=True) == "127.0.0.1/32"
    assert sim_network(settings_from({}), single=False) == "127.78.0.0/23"
    for bad in (
        {"DEMO_PROTO": "many"},
        {"DEMO_SIM_PORT_OFFSET": "80"},
        {"DEMO_SIM_BASE": "10.0.0.1"},
    ):
        with pytest.raises(DemoError):
            settings_from(bad)


def _items(entries: list[dict[str, Any]], **extra: Any) -> list[MinerImport]:
    return [
        MinerImport(
            info=m.inventory_info(),
            name=m.name,
            username=m.credentials.username or "",
            password=m.credentials.password,
            **extra,
        )
        for m in plan.plan(entries)
    ]


@pytest.mark.usefixtures("loopback_allowed")
def test_import_stores_audits_and_is_idempotent(org_a: OrgWorld) -> None:
    site = org_a.sites[0]
    items = _items(fake_inventory(3, 2), tags=("simulated",))
    result = miners_import(actor=SYSTEM, site=site, items=items)
    assert len(result.created) == 5 and not result.skipped
    miner = Miner.unscoped.get(name="north-rig-001")
    assert (miner.site_id, miner.host, miner.port, miner.scheme) == (
        site.pk,
        "127.78.0.1",
        10443,
        "https",
    )
    assert miner.identifier == "mac:02:00:00:00:00:00" and miner.tags == ["simulated"]
    assert "reboot" in miner.capabilities and miner.health == "unknown"
    assert credentials_for(miner).password == "rigwarden-sim-1"  # type: ignore[union-attr]
    antminer = Miner.unscoped.get(driver="antminer", name__endswith="001", name__startswith="north")
    assert credentials_for(antminer).username == "root"  # type: ignore[union-attr]
    assert ActivityEvent.unscoped.filter(verb="miner.add", org=org_a.org).count() == 5

    again = miners_import(actor=SYSTEM, site=site, items=items)
    assert (len(again.created), len(again.moved), again.unchanged) == (0, 0, 5)
    assert Miner.unscoped.count() == 5

    moved_entries = [{**e, "host": "127.0.0.1", "ports": {k: p + i for k, p in e["ports"].items()}}
                     for i, e in enumerate(fake_inventory(3, 2))]  # fmt: skip
    moved = miners_import(actor=SYSTEM, site=site, items=_items(moved_entries))
    assert len(moved.moved) == 5 and Miner.unscoped.count() == 5
    miner.refresh_from_db()
    assert (miner.host, miner.port) == ("127.0.0.1", 10443)
    assert DeviceInfo.from_dict(miner.device_info).host == "127.0.0.1"

    stranger = DeviceInfo(
        driver="protoos",
        host="127.0.0.1",
        port=10443,
        make="Proto",
        model="Rig",
        mac="02:ff:ff:ff:ff:ff",
    )
    clash = miners_import(actor=SYSTEM, site=site, items=[MinerImport(info=stranger)])
    assert not clash.created and clash.skipped == ["127.0.0.1:10443 is another miner's address"]


def test_import_needs_the_pair_permission_and_an_allowed_address(
    org_a: OrgWorld, settings: Any
) -> None:
    items = _items(fake_inventory(1, 0))
    with pytest.raises(Forbidden):
        miners_import(actor=Actor.for_user(org_a.users["viewer"]), site=org_a.sites[0], items=items)
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    with pytest.raises(ApplicationError, match="DISCOVERY_ALLOWED_NETWORKS"):
        miners_import(actor=Actor.for_user(org_a.users["owner"]), site=org_a.sites[0], items=items)
    assert not Miner.unscoped.exists()
    refused = ActivityEvent.unscoped.filter(verb="miner.import").values_list("result", flat=True)
    assert sorted(refused) == ["denied", "failed"]


def _write(tmp_path: Path, entries: list[dict[str, Any]], name: str = "inventory.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.mark.usefixtures("loopback_allowed")
def test_command_pairs_the_simulators_into_the_demo_sites(
    db: None, rigs: ThreadedFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = [{**e, "password": PASSWORD} for e in rigs.inventory]
    call_command("seed_demo_fleet", inventory=_write(tmp_path, inventory), seed_demo=True)
    out = capsys.readouterr().out
    assert out.startswith("Demo sign-in: owner@demo.rigwarden.local")
    assert "3 simulated miners in demo (north 2, south 1): 3 added" in out
    miners = {m.serial: m for m in Miner.unscoped.filter(org__slug="demo")}
    assert set(miners) == {e["serial"] for e in inventory}
    assert {m.site.slug for m in miners.values()} == {"north", "south"}
    assert all(m.firmware for m in miners.values())  # dialled: the rigs' own answers

    call_command("seed_demo_fleet", inventory=_write(tmp_path, inventory[:2]), prune=True)
    assert "0 added, 0 moved, 2 already there, 1 removed" in capsys.readouterr().out
    assert Miner.unscoped.filter(org__slug="demo").count() == 2


def test_command_without_the_networks_or_the_org(db: None, tmp_path: Path, settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    path = _write(tmp_path, fake_inventory(1, 1))
    with pytest.raises(CommandError, match="No organization"):
        call_command("seed_demo_fleet", inventory=path)
    call_command("seed_demo")
    with pytest.raises(CommandError, match="DISCOVERY_ALLOWED_NETWORKS"):
        call_command("seed_demo_fleet", inventory=path)
    with pytest.raises(CommandError, match="DISCOVERY_ALLOWED_NETWORKS"):
        call_command("seed_demo_fleet", inventory=path, no_dial=True)
    with pytest.raises(CommandError, match="not a simulator inventory"):
        call_command("seed_demo_fleet", inventory=_write(tmp_path, [{"x": 1}], "bad.json"))
    Site.unscoped.filter(slug="south").delete()
    with pytest.raises(CommandError, match="no site south"):
        call_command("seed_demo_fleet", inventory=path)
