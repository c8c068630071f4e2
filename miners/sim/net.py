"""Listening sockets per simulated address, closable and reopenable at run time.

Sockets are bound and put into listen state synchronously, so a miner that comes back from a
reboot accepts connections (into the kernel backlog) at once; the asyncio server that serves
the backlog is attached in a task. A generation number per host drops a late attach after the
host went away again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("miners.sim")

BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    port: int
    factory: Callable[[], asyncio.BaseProtocol]
    ssl: ssl.SSLContext | None = None


def raise_nofile_limit(wanted: int) -> int:
    """Lift RLIMIT_NOFILE towards `wanted` (root may raise the hard limit); return the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def listen_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listeners:
    """Which sockets and servers each host currently has. With `address` (port-per-miner
    mode) every host's sockets are bound there instead of on the host's own address."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._servers: dict[str, list[asyncio.AbstractServer]] = {}
        self._pending: dict[str, list[socket.socket]] = {}
        self._generation: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, host: str, endpoints: Sequence[Endpoint]) -> list[socket.socket]:
        """Bind every endpoint of a host or none (an error closes what was already bound)."""
        socks: list[socket.socket] = []
        try:
            for ep in endpoints:
                socks.append(listen_socket(self.address or host, ep.port))
        except OSError:
            for sock in socks:
                sock.close()
            raise
        self._generation[host] = self._generation.get(host, 0) + 1
        self._pending[host] = socks
        return socks

    async def serve(self, host: str, endpoints: Sequence[Endpoint]) -> None:
        """Attach asyncio servers to the sockets `bind` made for this host."""
        generation = self._generation.get(host)
        socks = self._pending.pop(host, [])
        loop = asyncio.get_running_loop()
        servers: list[asyncio.AbstractServer] = []
        self._servers[host] = servers  # open from now on (the sockets already listen)
        for sock, ep in zip(socks, endpoints, strict=True):
            if self._generation.get(host) != generation:
                sock.close()
                continue
            servers.append(
                await loop.create_server(ep.factory, sock=sock, ssl=ep.ssl, backlog=BACKLOG)
            )
        if self._generation.get(host) != generation:
            for server in servers:
                server.close()
            if self._servers.get(host) is servers:
                del self._servers[host]

    def is_open(self, host: str) -> bool:
        """Whether the host has listening sockets (bound or served)."""
        return host in self._servers or host in self._pending

    def reopen(self, host: str, endpoints: Sequence[Endpoint]) -> None:
        """Bind now, serve soon (from synchronous code such as fault injection)."""
        try:
            self.bind(host, endpoints)
        except OSError as exc:
            log.warning("cannot reopen %s: %s", host, exc)
            return
        task = asyncio.get_running_loop().create_task(self.serve(host, endpoints))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self, host: str) -> None:
        """Stop accepting: new connections are refused from now on."""
        self._generation[host] = self._generation.get(host, 0) + 1
        for sock in self._pending.pop(host, []):
            sock.close()
        for server in self._servers.pop(host, []):
            server.close()

    async def close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for host in list(self._servers) + list(self._pending):
            self.close(host)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
