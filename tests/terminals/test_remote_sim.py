"""Terminals and remote commands against the simulators' SSH (what ``make run`` offers): a
password login to a simulated miner, its shell in a terminal session, and the remote-command
catalog on two miners of different firmware."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from accounts.actor import Actor
from accounts.models import User
from terminals.models import SshHost
from terminals.services.hosts import host_add
from terminals.services.remote import remote_run
from terminals.services.sessions import session_open
from tests.conftest import OrgWorld
from tests.miners.conftest import SimFleetFactory, sim_fleet
from tests.terminals.test_runtime import close_code
from tests.terminals.test_sessions import attach, open_socket, read_until, type_

__all__ = ["sim_fleet"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def sim_host(world: OrgWorld, entry: dict[str, Any]) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.users["admin"]),
        site=world.sites[0],
        name=f"{entry['kind']} {entry['serial']}",
        address=entry["host"],
        port=entry["ports"]["ssh"],
        username="root",
        auth_method="password",
        secret=entry["password"],
    )


async def test_a_terminal_on_a_simulated_miner(org_a: OrgWorld, sim_fleet: SimFleetFactory) -> None:
    fleet = await sim_fleet(antminer=1, ssh=True)
    host = await sync_to_async(sim_host)(org_a, fleet.inventory[0])
    user = org_a.users["operator"]
    row = await sync_to_async(session_open)(actor=Actor.for_user(user), host=host, cols=120)
    socket = await open_socket(user, row.pk)
    await attach(socket)
    seen = bytearray()
    await read_until(socket, b"~# ", seen)
    await type_(socket, "stty size; tail -n 2 /var/log/miner.log\r")
    await read_until(socket, b"24 120", seen)
    await type_(socket, "exit\r")
    assert await close_code(socket) == 1000
    pinned = await sync_to_async(SshHost.unscoped.get)(pk=host.pk)
    assert pinned.host_key.startswith("ssh-ed25519 ")


async def test_remote_commands_on_two_firmwares(
    org_a: OrgWorld, sim_fleet: SimFleetFactory
) -> None:
    fleet = await sim_fleet(proto=1, antminer=1, ssh=True)
    hosts = [await sync_to_async(sim_host)(org_a, entry) for entry in fleet.inventory]
    actor = Actor.for_user(org_a.users["operator"])
    logs = await sync_to_async(remote_run)(
        actor=actor, hosts=hosts, command="fetch_logs", args={"lines": 3}
    )
    assert [r.outcome.status for r in logs.results] == ["ok", "ok"]
    assert all(len(r.text.splitlines()) == 3 for r in logs.results)
    restart = await sync_to_async(remote_run)(
        actor=actor, hosts=hosts, command="restart_mining", args={"service": "bmminer"}
    )
    by_kind = {r.host.name.split()[0]: r.outcome for r in restart.results}
    assert by_kind["antminer"].status == "ok" and "done" in by_kind["antminer"].output.decode()
    assert by_kind["protoos"].status == "failed" and by_kind["protoos"].exit_status == 127
    found = await sync_to_async(remote_run)(
        actor=actor, hosts=hosts[:1], command="grep_log", args={"pattern": "'; reboot; '"}
    )
    assert found.results[0].outcome.status == "ok" and found.results[0].text == ""


async def test_the_demo_seeds_ssh_hosts_for_its_simulated_miners(
    db: None, sim_fleet: SimFleetFactory, tmp_path: Path
) -> None:
    fleet = await sim_fleet(proto=1, antminer=2, ssh=True)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(fleet.inventory))
    out = io.StringIO()
    await sync_to_async(call_command)(
        "seed_demo_fleet", inventory=str(inventory), seed_demo=True, stdout=out
    )
    await sync_to_async(call_command)("seed_demo_ssh", inventory=str(inventory), stdout=out)
    await sync_to_async(call_command)("seed_demo_ssh", inventory=str(inventory), stdout=out)
    lines = out.getvalue().splitlines()
    assert "SSH hosts for simulated miners in demo: 3 added, 0 moved" in lines
    assert lines[-1] == "SSH hosts for simulated miners in demo: 0 added, 0 moved"
    hosts = await sync_to_async(list)(
        SshHost.unscoped.filter(org__slug="demo").select_related("miner", "site")
    )
    assert len(hosts) == 3 and all(h.miner is not None for h in hosts)
    assert all(h.site_id == h.miner.site_id for h in hosts if h.miner is not None)
    owner = await sync_to_async(User.objects.get)(email="owner@demo.rigwarden.local")
    run = await sync_to_async(remote_run)(
        actor=Actor.for_user(owner), hosts=hosts, command="uptime", args={}
    )
    assert [r.outcome.status for r in run.results] == ["ok"] * 3
