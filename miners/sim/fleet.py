"""SimFleet: builds the miners of a FleetSpec, binds their sockets and owns their lifecycle.

This is the in-process API used by tests and benchmarks; the CLI is a thin wrapper around it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from typing import Any

from miners.sim import single
from miners.sim.antminer import AntminerWeb
from miners.sim.cgminer import RpcServer
from miners.sim.clock import Clock, SystemClock, Timer
from miners.sim.faults import FaultInjector
from miners.sim.models import PROTOOS, model_for
from miners.sim.net import Endpoint, Listeners, raise_nofile_limit
from miners.sim.proto import ProtoApi
from miners.sim.spec import (
    ANTMINER_FACTORY_PASSWORD,
    PROTO_FACTORY_PASSWORD,
    FleetSpec,
    Identity,
    identities,
)
from miners.sim.ssh import SshSim
from miners.sim.state import Miner, Pool, Timing
from miners.sim.tls import server_context
from miners.sim.web import KeyOf, MinerServer, by_address, miner_server

log = logging.getLogger("miners.sim")

REAL_PORTS = {PROTOOS: {"http": 80, "https": 443}, "antminer": {"http": 80, "rpc": 4028}}
START_BATCH = 512


def default_pools(serial: str) -> list[Pool]:
    worker = f"rigwarden.{serial[-6:].lower()}"
    return [
        Pool("stratum+tcp://stratum.sim-pool.example:3333", worker, "x", 0, "Primary"),
        Pool("stratum+tcp://backup.sim-pool.example:3333", worker, "x", 1, "Backup"),
    ]


class SimFleet:
    """Many simulated miners in one asyncio process, each on its own loopback address."""

    def __init__(
        self, spec: FleetSpec, only: range | None = None, *, clock: Clock | None = None
    ) -> None:
        """`only` restricts this process to a slice of the fleet (see shards.py); `clock`
        defaults to wall time (tests pass a `ManualClock`)."""
        spec.validate()
        self.spec = spec
        self.only = only
        self.clock: Clock = SystemClock() if clock is None else clock
        self.timing = Timing(
            stats_delay=spec.stats_delay,
            reboot_downtime=spec.reboot_downtime,
            token_ttl=spec.token_ttl,
            refresh_ttl=spec.refresh_ttl,
        )
        self._miners: dict[str, Miner] = {}
        self.inventory: list[dict[str, Any]] = []
        self.faults = FaultInjector(self._miners.get, self._set_offline, self.clock)
        self._listeners = Listeners(spec.single_address)
        self._ports = single.PortMap() if spec.single_address else None
        self._key_of: KeyOf = self._ports.key if self._ports else by_address
        self._reboots: dict[str, Timer] = {}
        self._ssl: ssl.SSLContext | None = None
        self._proto_http: MinerServer | None = None
        self._antminer_http: MinerServer | None = None
        self._rpc = RpcServer(self.clock)
        self._ssh = (
            SshSim(self._miners.get, self.clock, self._key_of, spec.seed) if spec.ssh else None
        )
        self._started = False

    # -- public API --------------------------------------------------------------------------

    def miner(self, host: str) -> Miner:
        """The live state of the miner at `host` (tests inspect and mutate it directly)."""
        try:
            return self._miners[host]
        except KeyError:
            raise KeyError(f"no simulated miner at {host}") from None

    @property
    def miners(self) -> list[Miner]:
        return list(self._miners.values())

    async def start(self) -> None:
        """Bind every miner's ports; returns once all of them accept connections."""
        if self._started:
            raise RuntimeError("fleet already started")
        now = self.clock.now()
        for position, ident in enumerate(identities(self.spec)):
            if self.only is not None and position not in self.only:
                continue
            miner = self._build(ident, now)
            self._miners[miner.host] = miner
            entry = self._inventory_entry(miner)
            if self.spec.single_address:
                entry = single.published(entry, self.spec.single_address)
            self.inventory.append(entry)
        raise_nofile_limit(2 * len(self._miners) + 16384)
        if any(m.kind == PROTOOS and m.tls for m in self._miners.values()):
            self._ssl = server_context()
        if self._ssh is not None:
            await self._ssh.prepare()
        proto_api = ProtoApi(self)
        self._proto_http = miner_server(
            self._miners.get,
            proto_api.dispatch,
            self.clock,
            proto_api.answers_while_booting,
            key_of=self._key_of,
        )
        self._antminer_http = miner_server(
            self._miners.get, AntminerWeb(self).dispatch, self.clock, key_of=self._key_of
        )
        self._started = True
        try:
            miners = list(self._miners.values())
            for i in range(0, len(miners), START_BATCH):
                batch = miners[i : i + START_BATCH]
                for miner in batch:
                    self._listeners.bind(miner.host, self._endpoints(miner))
                await asyncio.gather(
                    *(self._listeners.serve(m.host, self._endpoints(m)) for m in batch)
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every socket and connection; safe to call twice."""
        for handle in self._reboots.values():
            handle.cancel()
        self._reboots.clear()
        await self._listeners.close_all()
        for server in (self._proto_http, self._antminer_http):
            if server is not None:
                await server.shutdown(0.2)
        self._rpc.close_all()
        if self._ssh is not None:
            self._ssh.close_all()
        self._started = False

    def reboot(self, miner: Miner, downtime: float | None = None) -> None:
        """Take the miner down for `downtime` s, then boot it with fresh uptime. Connections
        from before the reboot are dead. An Antminer refuses connections meanwhile; a ProtoOS
        rig keeps answering `/pairing/info` and drops the connection on everything else."""
        now = self.clock.now()
        delay = self.timing.reboot_downtime if downtime is None else downtime
        miner.settle(now)
        miner.revoke_tokens()
        miner.down_until = now + delay
        if miner.kind != PROTOOS:
            self._listeners.close(miner.host)
        for server in (self._proto_http, self._antminer_http):
            if server is not None:
                server.drop(miner.host)
        if self._ssh is not None:
            self._ssh.drop(miner.host)
        previous = self._reboots.pop(miner.host, None)
        if previous is not None:
            previous.cancel()
        self._reboots[miner.host] = self.clock.call_at(
            miner.down_until, functools.partial(self._finish_reboot, miner)
        )

    # -- internals ---------------------------------------------------------------------------

    def _build(self, ident: Identity, now: float) -> Miner:
        group = ident.group
        shift = self.spec.port_offset
        if self._ports is not None:  # port-per-miner mode: each miner its own shift
            shift = single.shift(single.position(self.spec.base, ident.host), shift)
        ports = {name: port + shift for name, port in REAL_PORTS[ident.kind].items()}
        if ident.kind == PROTOOS and not group.tls:
            ports.pop("https")
        if self.spec.ssh:
            ports["ssh"] = 22 + shift
        if group.password is not None:
            password = group.password
        elif group.factory_password is not None:
            password = group.factory_password
        elif ident.kind == PROTOOS:
            password = PROTO_FACTORY_PASSWORD
        else:
            password = ANTMINER_FACTORY_PASSWORD
        miner = Miner(
            kind=ident.kind,
            index=ident.index,
            host=ident.host,
            ports=ports,
            model=model_for(ident.kind, group.model),
            serial=ident.serial,
            mac=ident.mac,
            password=password,
            factory=group.factory,
            seed=self.spec.seed,
            timing=self.timing,
            now=now,
            tls=group.tls,
            quirks=group.quirks,
            flavour=group.flavour,
        )
        if group.initial_pools:
            miner.pools = default_pools(ident.serial)
        if self._ports is not None:
            self._ports.add(miner.host, ports.values())
        return miner

    @staticmethod
    def _inventory_entry(miner: Miner) -> dict[str, Any]:
        return {
            "kind": miner.kind,
            "host": miner.host,
            "ports": dict(miner.ports),
            "serial": miner.serial,
            "mac": miner.mac,
            "model": miner.model.name,
            "password": miner.password,
        }

    def _endpoints(self, miner: Miner) -> list[Endpoint]:
        assert self._proto_http is not None and self._antminer_http is not None
        if miner.kind == PROTOOS:
            endpoints = [Endpoint(miner.ports["http"], self._proto_http)]
            if "https" in miner.ports:
                endpoints.append(Endpoint(miner.ports["https"], self._proto_http, self._ssl))
        else:
            endpoints = [
                Endpoint(miner.ports["http"], self._antminer_http),
                Endpoint(miner.ports["rpc"], self._rpc.factory(miner)),
            ]
        if self._ssh is not None and "ssh" in miner.ports:
            endpoints.append(Endpoint(miner.ports["ssh"], self._ssh.factory))
        return endpoints

    def _finish_reboot(self, miner: Miner) -> None:
        self._reboots.pop(miner.host, None)
        miner.boot(self.clock.now())
        if not miner.has_fault("offline") and not self._listeners.is_open(miner.host):
            self._listeners.reopen(miner.host, self._endpoints(miner))

    def _set_offline(self, miner: Miner, offline: bool) -> None:
        if not self._started:
            return
        if offline:
            self._listeners.close(miner.host)
            if self._ssh is not None:
                self._ssh.drop(miner.host)
        elif (
            miner.host not in self._reboots or miner.kind == PROTOOS
        ) and not self._listeners.is_open(miner.host):
            self._listeners.reopen(miner.host, self._endpoints(miner))
