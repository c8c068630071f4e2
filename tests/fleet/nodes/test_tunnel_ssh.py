"""SSH through a node: a terminal host on a node-owned miner is dialled by the node (a
``tunnel_open`` TCP stream), asyncssh riding it as its socket, against a real sshd. The
node's allowlist decides: without an entry for the port the connection is refused."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts.actor import Actor
from terminals import manager
from terminals.models import SshHost
from terminals.services.hosts import host_add
from tests.fleet.nodes.live import servers
from tests.fleet.nodes.tunnelkit import World, running_agent, tunnel_rigs, until, world
from tests.terminals.conftest import Sshd, sshd

__all__ = ["servers", "sshd", "tunnel_rigs", "world"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _host(world: World, sshd: Sshd) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.org.users["admin"]),
        site=world.org.sites[0],
        name="rig via node",
        address="127.0.0.1",
        port=sshd.port,
        username="root",
        auth_method="key",
        secret=sshd.client_key,
        miner=world.proto,
    )


async def test_ssh_rides_the_node(world: World, sshd: Sshd) -> None:
    host = await sync_to_async(_host)(world, sshd)
    async with running_agent(world.state, allow=f"127.0.0.1/32#{sshd.port}") as client:
        conn, jump = await manager.connect_host(host.pk)
        try:
            assert jump is None
            assert len(client.tunnels.open) == 1  # the SSH connection is the node's stream
            result = await conn.run("echo through-the-node; head -c 300000 /dev/zero | wc -c")
            assert result.stdout == "through-the-node\n300000\n", result.stderr
        finally:
            conn.close()
            await conn.wait_closed()
        await until("the stream closed on the node", lambda: not client.tunnels.open)

    async with running_agent(world.state, allow="127.0.0.1/32#1"):
        with pytest.raises(manager.SessionError):
            await manager.connect_host(host.pk)
