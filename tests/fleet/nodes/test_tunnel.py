"""Tunnels through a node's control stream, from the server's API (``fleet.nodes.tunnel``):
TCP streams with backpressure, the node's own refusals, and an HTTP body that waits for the
reader instead of piling up. The node is the real agent; the server a daphne process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from fleet.nodes import tunnel
from fleetnode.protocol import TUNNEL_WINDOW
from tests.fleet.nodes.live import servers
from tests.fleet.nodes.tunnelkit import World, running_agent, tunnel_rigs, until, world
from tests.support import free_port

__all__ = ["servers", "tunnel_rigs", "world"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FLOOD = 32 * 1024 * 1024


def _stalled(seen: dict[str, int]) -> bool:
    """True once ``written`` stayed the same for 0.3 s (sampled on each call)."""
    now = time.monotonic()
    if seen["written"] != seen.get("last", -1):
        seen["last"], seen["since"] = seen["written"], int(now * 1000)
        return False
    return now * 1000 - seen["since"] > 300


@contextlib.asynccontextmanager
async def flood_server() -> AsyncIterator[tuple[int, dict[str, int]]]:
    """Echoes what it reads; after "flood\\n" it writes FLOOD bytes as fast as it may."""
    seen = {"written": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                if line == b"flood\n":
                    block = b"z" * 65536
                    for _ in range(FLOOD // len(block)):
                        writer.write(block)
                        await writer.drain()
                        seen["written"] += len(block)
                else:
                    writer.write(line)
                    await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield port, seen
    finally:
        server.close()


async def test_streams_echo_hold_back_and_refuse(world: World) -> None:
    async with running_agent(world.state) as client, flood_server() as (port, seen):
        stream = await tunnel.open_stream(world.node_id, "127.0.0.1", port)
        await stream.write(b"hello through the node\n")
        assert await stream.read() == b"hello through the node\n"

        # a reader that stops: the node stops reading the target once its credit is spent
        await stream.write(b"flood\n")
        entry = next(iter(client.tunnels.open.values()))
        await until("the node's credit spent", lambda: entry.credit < 256 * 1024)
        # the target fills the socket buffers on the way, then stalls: no progress while
        # nobody reads, far short of the end
        await until("the target stalled", lambda: _stalled(seen), timeout=20)
        assert seen["written"] < FLOOD // 2, seen
        got = 0
        while got < FLOOD:
            chunk = await stream.read()
            assert chunk
            got += len(chunk)
        assert got == FLOOD and seen["written"] == FLOOD
        await stream.close()
        await until("closed on the node", lambda: not client.tunnels.open)

        # as a socket, for libraries that take one (asyncssh's sock=)
        sock = await tunnel.open_socket(world.node_id, "127.0.0.1", port)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"ping\n"
        writer.close()
        await until("socket closed on the node", lambda: not client.tunnels.open)

    # the node's allowlist decides, before it dials anything
    async with running_agent(world.state, allow=f"127.0.0.1/32#{port}"):
        for host, port_ in (("169.254.169.254", 80), ("10.20.30.40", 22), ("127.0.0.1", 1)):
            with pytest.raises(tunnel.TunnelError) as refused:
                await tunnel.open_stream(world.node_id, host, port_)
            assert refused.value.reason == "refused", refused.value.message


async def _request(world: World, miner_id: int, path: str) -> tunnel.TunnelError:
    with pytest.raises(tunnel.TunnelError) as refused:
        async with tunnel.http_request(
            world.node_id,
            miner_id=miner_id,
            method="GET",
            path=path,
            query="",
            headers={},
            body=b"",
            timeout=20,
        ):
            pass
    return refused.value


async def test_http_tunnel_scope_and_backpressure(world: World) -> None:
    await world.bigrig.start()
    try:
        async with running_agent(world.state) as client:
            # only its own miners, only the API prefix, never credential endpoints, clean paths
            for miner_id, path in (
                (world.proto.pk + 1000, "/api/v1/system"),
                (world.proto.pk, "/api/v1/auth/login"),
                (world.proto.pk, "/api/v1/system/../auth/login"),
                (world.proto.pk, "/cgi-bin/get_system_info.cgi"),
            ):
                error = await _request(world, miner_id, path)
                assert error.reason == "refused", (path, error.message)

            # a body nobody reads stays within one window on the way
            async with tunnel.http_request(
                world.node_id,
                miner_id=world.big.pk,
                method="GET",
                path="/api/v1/system/logs",
                query="",
                headers={},
                body=b"",
                timeout=30,
            ) as reply:
                assert reply.status == 200
                entry = next(iter(client.tunnels.open.values()))
                await until("the node's credit spent", lambda: entry.credit < 256 * 1024)
                await asyncio.sleep(0.3)
                assert reply.end.inbox.qsize() <= TUNNEL_WINDOW // (16 * 1024)
                world.bigrig.release.set()
                total = 0
                async for chunk in reply.chunks():
                    total += len(chunk)
            assert total == world.bigrig.size
            await until("done on the node", lambda: not client.tunnels.open)
            assert client.tunnels.finished.get("done", 0) >= 1
    finally:
        world.bigrig.release.set()
        await world.bigrig.stop()
