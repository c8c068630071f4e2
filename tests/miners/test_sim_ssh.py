"""The simulators' SSH server: password login, the miner-like shell over exec and a pty,
quoting, a stable host key, and sessions that end when the miner reboots."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import asyncssh
import pytest

from miners.sim import ManualClock, SimFleet
from miners.sim.spec import FleetSpec, SpecError
from miners.sim.ssh import host_key, split_line
from tests.miners.conftest import SimFleetFactory


async def login(fleet: SimFleet, index: int = 0, password: str | None = None) -> Any:
    entry = fleet.inventory[index]
    return await asyncssh.connect(
        entry["host"],
        entry["ports"]["ssh"],
        username="root",
        password=password or entry["password"],
        known_hosts=None,  # a test client; the product pins host keys (terminals.manager)
        client_keys=None,
        agent_path=None,
        config=[],
    )


async def test_exec_commands_pipes_and_quoting(sim_fleet: SimFleetFactory) -> None:
    fleet = await sim_fleet(proto=1, antminer=1, ssh=True)
    assert all("ssh" in entry["ports"] for entry in fleet.inventory)
    async with await login(fleet, 1) as conn:
        up = await conn.run("uptime")
        assert up.exit_status == 0 and "load average" in up.stdout
        tail = await conn.run("cat /var/log/miner.log | tail -n 3")
        assert tail.exit_status == 0 and len(tail.stdout.splitlines()) == 3
        found = await conn.run("grep -F -e 'pool 0: authorized' /var/log/miner.log | head -n 1")
        assert "authorized worker" in found.stdout
        quoted = await conn.run("grep -F -e '; reboot' /var/log/miner.log")
        assert quoted.exit_status == 1 and quoted.stdout == ""
        missing = await conn.run("reboot")
        assert missing.exit_status == 127 and "not found" in missing.stdout
        chained = await conn.run("false && echo no; echo yes")
        assert chained.stdout == "yes\n"
        nofile = await conn.run("tail -n 5 /etc/shadow")
        assert nofile.exit_status == 1 and "No such file" in nofile.stdout
        redirect = await conn.run("echo x > /tmp/y")
        assert redirect.exit_status == 2
        miner = fleet.miner(fleet.inventory[1]["host"])
        before = miner.hashing_from()
        restart = await conn.run("/etc/init.d/bmminer.sh restart")
        assert restart.exit_status == 0 and "done" in restart.stdout
        assert miner.hashing_from() >= before
        wrong = await conn.run("/etc/init.d/mcdd restart")  # ProtoOS's daemon, not an Antminer's
        assert wrong.exit_status == 127


async def test_interactive_shell_with_a_pty(sim_fleet: SimFleetFactory) -> None:
    fleet = await sim_fleet(proto=1, ssh=True)
    async with await login(fleet) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(100, 30))
        seen = ""
        async with asyncio.timeout(10):
            while "~# " not in seen:
                seen += await process.stdout.read(1024)
        process.stdin.write("stty size\n")
        async with asyncio.timeout(10):
            while "30 100" not in seen:
                seen += await process.stdout.read(1024)
        process.change_terminal_size(132, 43)
        process.stdin.write("stty size\n")
        async with asyncio.timeout(10):
            while "43 132" not in seen:
                seen += await process.stdout.read(1024)
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait_closed(), 10)
        assert process.exit_status == 0


async def test_a_resize_does_not_print_another_prompt(sim_fleet: SimFleetFactory) -> None:
    """Every attach and window resize sends a size change: the shell keeps its one prompt, and
    what was typed before the resize is still the line."""
    fleet = await sim_fleet(proto=1, ssh=True)
    async with await login(fleet) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24))
        seen = ""
        async with asyncio.timeout(10):
            while "~# " not in seen:
                seen += await process.stdout.read(1024)
        process.stdin.write("stty")
        process.change_terminal_size(120, 40)
        process.change_terminal_size(132, 43)
        process.stdin.write(" size\n")
        async with asyncio.timeout(10):
            while "43 132" not in seen or not seen.rstrip().endswith("~#"):
                seen += await process.stdout.read(1024)
        assert seen.count("~# ") == 2, seen  # the first prompt, then the one after stty
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait_closed(), 10)


async def test_wrong_password_and_reboot(sim_fleet: SimFleetFactory, clock: ManualClock) -> None:
    fleet = await sim_fleet(antminer=1, ssh=True, clock=clock)
    with pytest.raises(asyncssh.PermissionDenied):
        await login(fleet, password="not-it")
    conn = await login(fleet)
    fleet.reboot(fleet.miner(fleet.inventory[0]["host"]), downtime=0.3)
    await asyncio.wait_for(conn.wait_closed(), 5)  # the session died with the miner
    with pytest.raises(OSError):
        await login(fleet)  # down: refused
    clock.advance(1.0)  # booted again
    async with await login(fleet) as again:
        assert (await again.run("whoami")).stdout == "root\n"


def test_host_key_is_stable_per_seed() -> None:
    assert host_key(1).get_fingerprint() == host_key(1).get_fingerprint()
    assert host_key(1).get_fingerprint() != host_key(2).get_fingerprint()


def test_ssh_needs_an_address_per_miner() -> None:
    with pytest.raises(SpecError):
        FleetSpec(proto=1, ssh=True, single_address="127.0.0.1").validate()
    with pytest.raises(SpecError):
        FleetSpec(proto=1, ssh="yes").validate()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "word", ["'; reboot; '", "$(reboot)", "`reboot`", 'a"b\\c', " && | ; > <", "it's", ""]
)
def test_the_shell_unquotes_like_posix(word: str) -> None:
    line = f"grep -F -e {shlex.quote(word)} /var/log/miner.log | tail -n 3"
    assert split_line(line) == [
        (False, "grep"),
        (False, "-F"),
        (False, "-e"),
        (False, word),
        (False, "/var/log/miner.log"),
        (True, "|"),
        (False, "tail"),
        (False, "-n"),
        (False, "3"),
    ]
