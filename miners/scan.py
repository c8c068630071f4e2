"""The network scanner: which of these address:port targets are miners, and what are they.

Used by the cloud's discovery task and by the fleet-node agent, so it is pure Python (no
Django) and takes targets that were already checked: IP literals only (the caller resolved
hostnames once and checked every address; the scanner never looks a name up again).

How it stays fast and bounded on a /20 where most addresses are silent:

- a fixed pool of `concurrency` workers pulls hosts from the target list (never one task per
  target: 16,000 targets would be 16,000 pending coroutines); a worker takes one host with
  all of its ports;
- each target costs one bare TCP connect, bounded by `connect_timeout` (a host's ports are
  tried together, at most `PER_HOST_CONNECTS` at once): a refused port is over at once, a
  filtered (silent) one after the connect deadline — only a port that accepts is identified;
- identification asks every driver that could be behind that port at once
  (`Registry.identify`: ProtoOS REST, stock Antminer CGI, CGMiner RPC on 4028, …) and takes
  the best-ranked confident answer (our own drivers before adapters, as the registry ranks
  them), the whole fan-out bounded by `identify_timeout` — a port that accepts but never
  answers costs one deadline, never a hung worker; at most `identify_concurrency`
  identifications run at once (they cost CPU; connect probes barely do);
- a host's open ports are identified least ambiguous first (fewest candidate drivers), and
  the ports the identified device names as its own (`DeviceInfo.ports`: an Antminer's RPC
  and web ports) are reported as that device without asking again; on its other ports, the
  driver that identified it (if it would win there anyway) first tries to prove with one
  cheap read that the same device answers (`Driver.same_device`: a ProtoOS rig's
  `/pairing/info` on 80 naming the MAC and serial it gave on 443) before a full fan-out;
- results are streamed as they are found (`async for found in scan(...)`), through a small
  bounded queue, so a slow consumer holds the workers back instead of buffering the run;
- cancelling the consumer (or closing the iterator) cancels every worker and closes their
  sockets before returning.
- the worker count is cut to what the open-files limit holds, and a socket shortage
  (EMFILE, no free ports) is waited out within the connect deadline, never taken for a
  closed port.

Every open target that identifies is reported once, as `Found` (unknown fields empty).
`progress(n)` is called with the number of targets probed so far (each target once, found or
not), from the event loop; it must not block. Iterate inside `contextlib.aclosing(scan(...))`
when the loop may stop early, so the workers stop at once rather than at garbage collection.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import resource
import socket
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from miners.http import HttpClient
from miners.registry import Registry, default_drivers
from miners.types import Credentials, DeviceInfo

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
DEFAULT_CONNECT_TIMEOUT = 1.5
DEFAULT_IDENTIFY_TIMEOUT = 5.0
DEFAULT_IDENTIFY_CONCURRENCY = 128
"""Identifications at once, whatever the worker count: probing silent ports wants many
workers, identifying costs CPU (TLS, several requests) — too many at once on a busy machine
and none finishes within its deadline (measured: 1,024 at once found nothing at load 24)."""
MAX_CONCURRENCY = 4096
"""Upper bound on workers, whatever the caller asks."""
PER_HOST_CONNECTS = 8
"""Ports of one host connected to at once (so a worker holds at most this many sockets)."""


@dataclass(frozen=True, slots=True)
class Found:
    """One identified miner. Unknown text fields are empty strings (never None)."""

    host: str
    port: int
    scheme: str
    driver: str
    make: str
    model: str
    firmware: str
    mac: str
    serial: str

    @classmethod
    def from_info(cls, info: DeviceInfo, host: str, port: int) -> Found:
        """What ``info`` says about ``port``; the scheme is what that port speaks: ``tcp`` for
        the RPC port the device names (a stock Antminer's CGMiner RPC beside its web port), so
        a rig's web API port and its RPC port are told apart."""
        return cls(
            host=host,
            port=port,
            scheme="tcp" if port == info.ports.get("rpc") else info.scheme or "",
            driver=info.driver,
            make=info.make or "",
            model=info.model or "",
            firmware=info.firmware or "",
            mac=info.mac or "",
            serial=info.serial or "",
        )

    def to_dict(self) -> dict[str, str | int]:
        return {
            "host": self.host,
            "port": self.port,
            "scheme": self.scheme,
            "driver": self.driver,
            "make": self.make,
            "model": self.model,
            "firmware": self.firmware,
            "mac": self.mac,
            "serial": self.serial,
        }


def check_targets(targets: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The targets, normalised (canonical IP text, ints); ValueError naming the first bad one.
    Hostnames are refused: resolving is the caller's job (once, with every address checked)."""
    checked: list[tuple[str, int]] = []
    for target in targets:
        try:
            host, port = target
        except (TypeError, ValueError):
            raise ValueError(f"not a (host, port) pair: {target!r}") from None
        if not isinstance(host, str):
            raise ValueError(f"host must be an IP address string: {host!r}")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"not an IP address: {host!r}") from None
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"bad port for {host}: {port!r}")
        checked.append((str(address), port))
    return checked


_SHORTAGE = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)
"""Errors that say "this machine is short of sockets right now", not "nothing listens"."""
_new_socket = socket.socket


async def port_open(host: str, port: int, timeout: float) -> bool:
    """Whether host:port accepts a TCP connection within `timeout` (refused and silent → False).
    A bare non-blocking socket: cheaper than a stream pair, and closed on every path. When the
    machine runs short of descriptors or ports, it waits and tries again within the same
    deadline instead of calling the port closed (a shortage must not hide miners)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.005
    while True:
        try:
            sock = _new_socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            if exc.errno not in _SHORTAGE:
                raise
        else:
            sock.setblocking(False)
            try:
                async with asyncio.timeout_at(deadline):
                    await loop.sock_connect(sock, (host, port))
            except TimeoutError:
                return _connected(sock)  # a busy loop may see the deadline before the answer
            except OSError as exc:
                if exc.errno not in _SHORTAGE:
                    return False
            else:
                return True
            finally:
                sock.close()
        if loop.time() + pause >= deadline:
            log.warning("scan: %s:%s not probed: out of sockets until the deadline", host, port)
            return False
        await asyncio.sleep(pause)
        pause = min(0.2, pause * 2)


def _connected(sock: socket.socket) -> bool:
    """Whether the kernel completed the connect (the event loop just hadn't looked yet)."""
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            return False
        sock.getpeername()
    except OSError:
        return False
    return True


def worker_budget(wanted: int) -> int:
    """`wanted` workers, fewer if the open-files limit can't hold their sockets (each worker
    holds up to `PER_HOST_CONNECTS` probes, then a few identification connections)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - 128) // (PER_HOST_CONNECTS + 4)))


def default_registry(http: HttpClient | None = None) -> Registry:
    """Our own drivers (ProtoOS, stock Antminer/CGMiner RPC). pyasic-rs is left out by default:
    it can abort the interpreter at exit, so a caller that wants it passes its own registry."""
    return Registry(default_drivers(include_pyasic=False, http=http))


_DONE = object()


async def scan(
    targets: Sequence[tuple[str, int]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    identify_timeout: float = DEFAULT_IDENTIFY_TIMEOUT,
    progress: Callable[[int], None] | None = None,
    registry: Registry | None = None,
    credentials: Credentials | None = None,
    identify_concurrency: int = DEFAULT_IDENTIFY_CONCURRENCY,
) -> AsyncGenerator[Found, None]:
    """Yield a `Found` for every target that identifies as a miner, as soon as it does.

    `registry` defaults to our own drivers on a private HTTP client (closed at the end);
    `credentials` are offered to drivers that hide identity details behind a login;
    `identify_concurrency` bounds the identifications running at once (connect probes are
    bounded by `concurrency`).

    Hosts are probed in the order they first appear by a fixed pool of workers; results
    arrive in completion order. Raises ValueError (before any I/O) for a target that isn't an (IP, port) pair or
    for non-positive limits."""
    checked = check_targets(targets)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if connect_timeout <= 0 or identify_timeout <= 0:
        raise ValueError("timeouts must be positive")
    if not checked:
        return
    # closed when the scan ends; one connection per host:port, so a rig's identity reads share
    # one TLS handshake (a scan never comes back to a host, so keep-alive is short)
    own_http = HttpClient(limit_per_host=1, keepalive_timeout=2.0) if registry is None else None
    reg = registry or default_registry(own_http)
    by_host: dict[str, list[int]] = {}
    for host, port in checked:
        ports = by_host.setdefault(host, [])
        if port not in ports:
            ports.append(port)
    workers = worker_budget(min(concurrency, MAX_CONCURRENCY, len(by_host)))
    results: asyncio.Queue[Found | object] = asyncio.Queue(maxsize=max(64, workers))
    cursor = iter(by_host.items())
    probed = 0

    def advance(n: int) -> None:
        nonlocal probed
        probed += n
        if progress is not None and n:
            try:
                progress(probed)
            except Exception:  # the caller's callback must not stop a worker
                log.exception("scan: progress callback failed")

    identifying = asyncio.Semaphore(max(1, min(identify_concurrency, workers)))

    async def identify(host: str, port: int) -> DeviceInfo | None:
        try:
            async with identifying:  # the deadline starts once it is this port's turn
                return await asyncio.wait_for(
                    reg.identify(host, port, timeout=identify_timeout, credentials=credentials),
                    identify_timeout + 0.5,  # drivers bound themselves; this bounds the fan-out
                )
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            raise
        except Exception:  # a driver bug must cost one target, not the run
            log.exception("scan: identifying %s:%s failed", host, port)
            return None

    async def same_device(host: str, port: int, known: list[DeviceInfo]) -> DeviceInfo | None:
        """A device already identified on another port of `host`, proven by its driver with
        one cheap read to answer on `port` too — only when that driver would win `port`'s
        fan-out anyway (the best-ranked candidate), so the result equals a full identify."""
        candidates = reg.candidates(port)
        best = min((d.priority for d in candidates), default=None)
        for info in known:
            driver = next((d for d in candidates if d.name == info.driver), None)
            if driver is None or driver.priority != best:
                continue
            try:
                async with identifying:
                    proven = await asyncio.wait_for(
                        driver.same_device(host, port, info, timeout=identify_timeout),
                        identify_timeout + 0.5,
                    )
            except TimeoutError:
                proven = None
            except asyncio.CancelledError:
                raise
            except Exception:  # a driver bug: identify in full instead
                log.exception("scan: confirming %s:%s failed", host, port)
                proven = None
            if proven is not None:
                return proven
        return None

    async def probe(host: str, ports: list[int]) -> None:
        gate = asyncio.Semaphore(PER_HOST_CONNECTS)

        async def check(port: int) -> bool:
            async with gate:
                return await port_open(host, port, connect_timeout)

        states = await asyncio.gather(*(check(p) for p in ports))
        open_ports = [p for p, up in zip(ports, states, strict=True) if up]
        advance(len(ports) - len(open_ports))
        done: set[int] = set()
        known: list[DeviceInfo] = []
        for port in sorted(open_ports, key=lambda p: len(reg.candidates(p))):
            if port in done:
                continue
            info = await same_device(host, port, known) or await identify(host, port)
            done.add(port)
            if info is None:
                advance(1)
                continue
            # ports the identified device itself names (Antminer: its RPC and web ports) are
            # the same miner: reported without asking again
            known.append(info)
            companions = [q for q in info.ports.values() if q in open_ports and q not in done]
            claimed = [port, *dict.fromkeys(companions)]
            done.update(claimed)
            advance(len(claimed))
            for q in claimed:
                await results.put(Found.from_info(info, host, q))

    async def worker() -> None:
        for host, ports in cursor:  # shared iterator: each host goes to exactly one worker
            await probe(host, ports)

    async def supervise() -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        await results.put(_DONE)

    tasks = [asyncio.create_task(worker(), name=f"scan-worker-{i}") for i in range(workers)]
    supervisor = asyncio.create_task(supervise(), name="scan-supervisor")
    try:
        while True:
            item = await results.get()
            if item is _DONE:
                break
            assert isinstance(item, Found)
            yield item
    finally:
        supervisor.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(supervisor, *tasks, return_exceptions=True)
        if own_http is not None:
            await own_http.close()
