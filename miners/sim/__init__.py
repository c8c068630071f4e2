"""Simulated ProtoOS and Antminer miners for demos, tests and benchmarks.

An independent implementation of the firmware side of the protocols in
docs/miner-apis.md: it must not import Django or the drivers in `miners/`.
"""

from miners.sim.clock import Clock, ManualClock, SystemClock
from miners.sim.faults import FAULT_KINDS, FaultError, FaultInjector
from miners.sim.fleet import SimFleet
from miners.sim.spec import FleetSpec, GroupSpec, SpecError, seeded_password
from miners.sim.state import Miner

__all__ = [
    "FAULT_KINDS",
    "Clock",
    "FaultError",
    "FaultInjector",
    "FleetSpec",
    "GroupSpec",
    "ManualClock",
    "Miner",
    "SimFleet",
    "SpecError",
    "SystemClock",
    "seeded_password",
]
