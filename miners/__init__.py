"""Miner drivers: talk to ProtoOS rigs, stock Antminers and (via pyasic-rs) other brands
through one typed interface. Pure Python, no Django: used by the server and the fleet node.

    from miners import Registry, default_drivers, Credentials, Detail
    registry = Registry(default_drivers())
    info = await registry.identify_any("10.0.0.12")
    device = registry.get(info.driver).connect(info, Credentials(password="..."))
    status = await device.status()
"""

from miners.antminer import AntminerDriver
from miners.base import Detail, Device, Driver
from miners.deadline import DEFAULT_TIMEOUT, IDENTIFY_TIMEOUT
from miners.errors import (
    AuthFailed,
    BadResponse,
    DefaultPasswordActive,
    MinerError,
    Rebooting,
    Rejected,
    Timeout,
    Unreachable,
    Unsupported,
)
from miners.http import HttpClient, close_shared_http, shared_http
from miners.protoos import ProtoOSDriver
from miners.registry import EMBEDDED_VIEW_DRIVERS, Registry, default_drivers
from miners.tokens import TokenCache
from miners.types import (
    Capability,
    CoolingMode,
    Credentials,
    DeviceInfo,
    Fan,
    Hashboard,
    Health,
    MinerIssue,
    MinerState,
    MinerStatus,
    Pool,
    PoolConfig,
    PoolStatus,
    PowerMode,
    Psu,
    Temperatures,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "EMBEDDED_VIEW_DRIVERS",
    "IDENTIFY_TIMEOUT",
    "AntminerDriver",
    "AuthFailed",
    "BadResponse",
    "Capability",
    "CoolingMode",
    "Credentials",
    "DefaultPasswordActive",
    "Detail",
    "Device",
    "DeviceInfo",
    "Driver",
    "Fan",
    "Hashboard",
    "Health",
    "HttpClient",
    "MinerError",
    "MinerIssue",
    "MinerState",
    "MinerStatus",
    "Pool",
    "PoolConfig",
    "PoolStatus",
    "PowerMode",
    "ProtoOSDriver",
    "Psu",
    "Rebooting",
    "Registry",
    "Rejected",
    "Temperatures",
    "Timeout",
    "TokenCache",
    "Unreachable",
    "Unsupported",
    "close_shared_http",
    "default_drivers",
    "shared_http",
]
