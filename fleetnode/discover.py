"""The signed ``discover`` command: scan the server-computed scope, stream what answers.

The payload (``docs/protocol.md``, "discover"; built by ``discovery.node.discover_payload``)::

    {"run": 7, "addresses": ["10.0.0.1", ...], "ports": [80, 443, 4028],
     "node_local_subnet": false, "max_devices": 4096, "batch_max": 200, "deadline_s": 600,
     "concurrency": 256, "connect_timeout_s": 1.5, "identify_timeout_s": 5.0}

The scope's fields sit at the payload's top level: only ``ports`` and at least one of
``addresses`` / ``node_local_subnet`` are required; ``batch_max`` lowers the devices per batch.
A payload that nests them under ``scope`` (an early draft's shape) is refused as a whole
(``rejected``). The scan probes exactly addresses x ports (plus, with ``node_local_subnet``, the
subnet of the node's default-route interface) and nothing else. The node checks the scope
itself before any packet leaves, whatever the server said: IP literals only, ≤ 4,096
addresses, ≤ 256 ports, a local subnet no wider than /20, and every address private (RFC 1918,
RFC 4193) unless this node's operator listed its range in
``FLEETNODE_DISCOVERY_ALLOWED_NETWORKS`` (comma-separated CIDRs; loopback, link-local and
the metadata address are refused otherwise). One bad address refuses the whole command.

What is found travels in ``discovery_batch`` frames ``{type, command_id, batch_seq, devices,
probed, total}`` (``batch_seq`` from 1 per command; at most ``BATCH_DEVICES`` (or the
payload's ``batch_max``) devices and ``BATCH_BYTES`` of JSON each; a progress-only batch with
no devices at most every ``PROGRESS_EVERY_S``). Batches with devices go one at a time in seq
order, each kept until the server's ``batch_ack`` naming its ``command_id`` and
``batch_seq``: the outstanding one is sent again after a reconnect or ``RESEND_AFTER_S``
without an answer (the server ignores duplicates), and no later seq is sent before it is
acknowledged. After the scan, the remaining batches, then a last progress batch (probed ==
total), then the final ack: ``ok``, or ``partial`` (quota reached, deadline hit, batches
never acknowledged) with counters ``{total, probed, found, batches, unacked, skipped}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetnode.protocol import dump_frame
from miners.registry import Registry
from miners.scan import Found, scan

log = logging.getLogger("fleetnode.discover")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_ADDRESSES = 4096
MAX_PORTS = 256
MAX_PREFIX_WIDTH = 20  # /20: the widest local subnet a node will scan
BATCH_DEVICES = 200
BATCH_BYTES = 256 * 1024  # far under the 1 MiB frame limit
MAX_DEVICE_BYTES = 8 * 1024  # one device's JSON; a larger one is a broken firmware, skipped
FLUSH_EVERY_S = 0.25  # found devices wait at most this long for company
PROGRESS_EVERY_S = 1.0
ACK_WAIT_S = 30.0  # after the scan: how long the final ack waits for outstanding batch_acks
RESEND_AFTER_S = 10.0  # an unacked batch is sent again after this long (also on reconnect)
DEFAULT_DEADLINE_S = 600.0
MAX_DEADLINE_S = 3600.0
ENV_ALLOWED = "FLEETNODE_DISCOVERY_ALLOWED_NETWORKS"

PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class ScopeError(ValueError):
    """The command's scope is refused (the message names the offending part)."""


def allowed_networks_from_env(environ: dict[str, str] | None = None) -> tuple[IPNetwork, ...]:
    """The node operator's extra networks; a bad value fails loudly at start."""
    raw = (environ if environ is not None else os.environ).get(ENV_ALLOWED, "")
    networks = []
    for part in raw.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{ENV_ALLOWED}: {exc}") from None
    return tuple(networks)


def address_allowed(address: IPAddress, allowed: Iterable[IPNetwork]) -> bool:
    """Private (RFC 1918 / RFC 4193) or inside a network the node's operator listed."""
    for network in (*allowed, *PRIVATE_NETWORKS):
        if address.version == network.version and address in network:
            return True
    return False


def local_subnet() -> IPNetwork:
    """The IPv4 subnet of the interface that holds the default route (Linux)."""
    iface = None
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            iface = fields[0]
            break
    if iface is None:
        raise ScopeError("node-local-subnet: this node has no default route")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = struct.pack("256s", iface.encode()[:15])
        try:
            addr = fcntl.ioctl(sock.fileno(), 0x8915, packed)[20:24]  # SIOCGIFADDR
            mask = fcntl.ioctl(sock.fileno(), 0x891B, packed)[20:24]  # SIOCGIFNETMASK
        except OSError as exc:
            raise ScopeError(f"node-local-subnet: can't read {iface}'s address: {exc}") from None
    return ipaddress.ip_network(f"{socket.inet_ntoa(addr)}/{socket.inet_ntoa(mask)}", strict=False)


@dataclass(frozen=True, slots=True)
class Job:
    targets: list[tuple[str, int]]
    addresses: int
    max_devices: int
    deadline_s: float
    concurrency: int
    connect_timeout: float
    identify_timeout: float
    batch_devices: int = BATCH_DEVICES


def _number(payload: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScopeError(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def parse_job(
    payload: dict[str, Any],
    *,
    allowed: Iterable[IPNetwork],
    subnet: Callable[[], IPNetwork] = local_subnet,
) -> Job:
    """The command's payload → the exact targets to probe; `ScopeError` naming what is wrong."""
    allowed = tuple(allowed)
    if "scope" in payload:
        raise ScopeError(
            "scope: the discover payload carries addresses, ports and node_local_subnet at "
            "its top level, not under 'scope'"
        )
    ports = payload.get("ports")
    if not isinstance(ports, list) or not ports:
        raise ScopeError("ports must be a non-empty list")
    if len(ports) > MAX_PORTS:
        raise ScopeError(f"ports: {len(ports)} ports, at most {MAX_PORTS}")
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ScopeError(f"ports: {str(port)[:40]!r} is not a port")
    raw = payload.get("addresses", [])
    if not isinstance(raw, list):
        raise ScopeError("addresses must be a list")
    if len(raw) > MAX_ADDRESSES:
        raise ScopeError(f"addresses: {len(raw)} addresses, at most {MAX_ADDRESSES}")
    addresses: dict[IPAddress, None] = {}
    for value in raw:
        if not isinstance(value, str):
            raise ScopeError(f"addresses: {str(value)[:40]!r} is not an IP address")
        try:
            addresses[ipaddress.ip_address(value)] = None
        except ValueError:
            raise ScopeError(f"addresses: {value[:60]!r} is not an IP address") from None
    local = payload.get("node_local_subnet", False)
    if not isinstance(local, bool):
        raise ScopeError("node_local_subnet must be true or false")
    if local:
        network = subnet()
        if network.prefixlen < MAX_PREFIX_WIDTH:
            raise ScopeError(
                f"node-local-subnet: {network} is wider than /{MAX_PREFIX_WIDTH}; "
                "give the ranges to scan instead"
            )
        addresses.update(dict.fromkeys(network.hosts()))
    if not addresses:
        raise ScopeError("the scope names no address")
    if len(addresses) > MAX_ADDRESSES:
        raise ScopeError(f"scope: {len(addresses)} addresses, at most {MAX_ADDRESSES}")
    for address in addresses:
        if not address_allowed(address, allowed):
            raise ScopeError(
                f"{address} is not a private address (list its range in {ENV_ALLOWED} "
                "on the node to allow it)"
            )
    unique_ports = list(dict.fromkeys(ports))
    targets = [(str(a), p) for a in addresses for p in unique_ports]
    return Job(
        targets=targets,
        addresses=len(addresses),
        max_devices=int(_number(payload, "max_devices", len(targets), 1, 1_000_000)),
        deadline_s=_number(payload, "deadline_s", DEFAULT_DEADLINE_S, 1, MAX_DEADLINE_S),
        concurrency=int(_number(payload, "concurrency", 256, 1, 1024)),
        connect_timeout=_number(payload, "connect_timeout_s", 1.5, 0.05, 10),
        identify_timeout=_number(payload, "identify_timeout_s", 5.0, 0.1, 30),
        batch_devices=int(_number(payload, "batch_max", BATCH_DEVICES, 1, 100_000)),
    )


@dataclass
class _Batch:
    seq: int
    frame: dict[str, Any]
    sent_at: float | None = None


@dataclass
class Stream:
    """The batches of one running command: numbering, sending, acks, resends.

    Device batches go one at a time, in ``batch_seq`` order: the next is sent only once the
    previous one is acknowledged, so the server never sees a higher seq before a lower one
    that still has devices (it may take a repeated or lower seq as a duplicate); later batches
    queue meanwhile. A progress-only batch is sent only when nothing is queued."""

    command_id: str | int
    send: Callable[[dict[str, Any]], None]
    total: int
    online: Callable[[], bool] = lambda: True
    batch_devices: int = BATCH_DEVICES
    probed: int = 0
    found: int = 0
    skipped: int = 0
    next_seq: int = 1
    sealed: int = 0
    sent_batches: int = 0
    unacked: dict[int, _Batch] = field(default_factory=dict)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    _devices: list[dict[str, Any]] = field(default_factory=list)
    _bytes: int = 0
    _last_progress: float = 0.0

    def add(self, found: Found) -> None:
        device = found.to_dict()
        size = len(dump_frame(device).encode())
        if size > MAX_DEVICE_BYTES:
            self.skipped += 1
            log.warning("skipping %s:%s: its identity is %d bytes", found.host, found.port, size)
            return
        if self._devices and (
            len(self._devices) >= self.batch_devices or self._bytes + size > BATCH_BYTES
        ):
            self._seal()
        self._devices.append(device)
        self._bytes += size
        self.found += 1

    @property
    def waiting(self) -> bool:
        return bool(self._devices)

    def _frame(self, devices: list[dict[str, Any]]) -> dict[str, Any]:
        frame = {
            "type": "discovery_batch",
            "command_id": self.command_id,
            "batch_seq": self.next_seq,
            "devices": devices,
            "probed": self.probed,
            "total": self.total,
        }
        self.next_seq += 1
        self._last_progress = time.monotonic()
        return frame

    def _seal(self) -> None:
        """The collected devices become the next batch, queued until acknowledged."""
        frame = self._frame(self._devices)
        self.unacked[frame["batch_seq"]] = _Batch(frame["batch_seq"], frame)
        self.sealed += 1
        self.acked.clear()
        self._devices, self._bytes = [], 0
        self._pump()

    def _pump(self) -> None:
        """Send the oldest queued batch if it hasn't gone out yet (one in flight at most)."""
        if not self.unacked or not self.online():
            return
        batch = next(iter(self.unacked.values()))
        if batch.sent_at is None:
            batch.sent_at = time.monotonic()
            self.sent_batches += 1
            self.send(batch.frame)

    def flush(self, *, progress: bool = False) -> None:
        """Send what is collected (or, with `progress`, a device-less batch when nothing is
        outstanding)."""
        if self._devices:
            self._seal()
        elif progress and not self.unacked and self.online():
            self.send(self._frame([]))

    def progress_due(self) -> bool:
        return time.monotonic() - self._last_progress >= PROGRESS_EVERY_S

    def ack(self, frame: dict[str, Any]) -> bool:
        seq = frame.get("batch_seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq not in self.unacked:
            return False
        del self.unacked[seq]
        if self.unacked:
            self._pump()
        else:
            self.acked.set()
        return True

    def resend(self, *, older_than: float = 0.0) -> int:
        """Send the outstanding batch again if it went out more than `older_than` s ago."""
        if not self.unacked or not self.online():
            return 0
        batch = next(iter(self.unacked.values()))
        if batch.sent_at is not None and time.monotonic() - batch.sent_at < older_than:
            return 0
        batch.sent_at = time.monotonic()
        self.sent_batches += 1
        self.send(batch.frame)
        return 1


class Discovery:
    """Runs one ``discover`` command at a time (the dispatcher's exclusive slot)."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        registry: Registry | None = None,
        allowed: Iterable[IPNetwork] | None = None,
        subnet: Callable[[], IPNetwork] = local_subnet,
        online: Callable[[], bool] = lambda: True,
    ) -> None:
        self.send = send
        self.registry = registry
        self.allowed = tuple(allowed) if allowed is not None else allowed_networks_from_env()
        self.subnet = subnet
        self.online = online
        self.stream: Stream | None = None

    def batch_ack(self, frame: dict[str, Any]) -> bool:
        """A ``batch_ack`` naming a command_id: True when it belonged to the running scan."""
        stream = self.stream
        if stream is None or frame.get("command_id") != stream.command_id:
            return False
        return stream.ack(frame)

    def reconnected(self) -> None:
        if self.stream is not None:
            sent = self.stream.resend()
            if sent:
                log.info("re-sent %d unacknowledged discovery batches", sent)

    async def run(
        self, command_id: str | int, payload: dict[str, Any]
    ) -> tuple[str, dict[str, Any], str]:
        """(status, result, error) for the final ack."""
        try:
            job = parse_job(payload, allowed=self.allowed, subnet=self.subnet)
        except ScopeError as exc:
            log.warning("discover %s refused: %s", command_id, exc)
            return "rejected", {}, str(exc)
        stream = Stream(
            command_id,
            self.send,
            len(job.targets),
            online=self.online,
            batch_devices=min(BATCH_DEVICES, job.batch_devices),
        )
        self.stream = stream
        log.info(
            "discover %s: %d addresses x %d ports",
            command_id,
            job.addresses,
            len(job.targets) // max(1, job.addresses),
        )
        try:
            complete = await self._scan(job, stream)
            stream.flush()  # the last devices
            acked = await self._drain(stream)
            stream.flush(progress=True)  # probed == total, before the final ack
        finally:
            self.stream = None
        result = {
            "total": stream.total,
            "probed": stream.probed,
            "found": stream.found,
            "batches": stream.sealed,
            "unacked": len(stream.unacked),
            "skipped": stream.skipped,
        }
        if complete and acked and not stream.skipped:
            return "ok", result, ""
        why = []
        if stream.found >= job.max_devices:
            why.append(f"stopped at the quota of {job.max_devices} devices")
        elif not complete:
            why.append(f"stopped at the deadline of {job.deadline_s:g} s")
        if not acked:
            why.append(f"{len(stream.unacked)} batches never acknowledged")
        if stream.skipped:
            why.append(f"{stream.skipped} devices with oversized identities skipped")
        return "partial", result, "; ".join(why)

    async def _scan(self, job: Job, stream: Stream) -> bool:
        """True when every target was probed."""
        in_scope = set(job.targets)

        def progress(n: int) -> None:
            stream.probed = n

        async def consume() -> bool:
            async with contextlib.aclosing(
                scan(
                    job.targets,
                    concurrency=job.concurrency,
                    connect_timeout=job.connect_timeout,
                    identify_timeout=job.identify_timeout,
                    progress=progress,
                    registry=self.registry,
                )
            ) as found_iter:
                async for found in found_iter:
                    if (found.host, found.port) not in in_scope:  # can't happen; never leaks
                        continue
                    stream.add(found)
                    if stream.found >= job.max_devices:
                        return False
            return True

        async def ticker() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY_S)
                if stream.waiting:
                    stream.flush()
                elif stream.progress_due():
                    stream.flush(progress=True)
                stream.resend(older_than=RESEND_AFTER_S)

        tick = asyncio.create_task(ticker())
        try:
            async with asyncio.timeout(job.deadline_s):
                return await consume()
        except TimeoutError:
            return False
        finally:
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)

    async def _drain(self, stream: Stream) -> bool:
        """Wait for the outstanding batch_acks, re-sending a slow one; give up after
        `ACK_WAIT_S` without any acknowledgement."""
        deadline = time.monotonic() + ACK_WAIT_S
        outstanding = len(stream.unacked)
        while stream.unacked:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.acked.wait(), min(left, RESEND_AFTER_S))
            if len(stream.unacked) < outstanding:  # the server is answering: wait on
                outstanding = len(stream.unacked)
                deadline = time.monotonic() + ACK_WAIT_S
            if stream.unacked:
                stream.resend(older_than=RESEND_AFTER_S)
        return True
