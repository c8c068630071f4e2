"""How a miner is known: ``mac:`` → ``serial:`` → ``auto:`` (pure, no Django).

``auto:`` hashes who dialled it (the cloud or a node), the address, the port and the driver,
so equal private ranges at two sites never merge into one miner.
"""

from __future__ import annotations

import hashlib
import re

from miners import DeviceInfo

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str | None) -> str:
    value = (mac or "").strip().lower().replace("-", ":")
    return value if _MAC.match(value) and value != "00:00:00:00:00:00" else ""


def identifier_for(info: DeviceInfo, *, dialled_by: str = "cloud") -> str:
    mac = normalise_mac(info.mac)
    if mac:
        return f"mac:{mac}"
    serial = (info.serial or "").strip()
    if serial:
        return f"serial:{serial[:100]}"
    raw = f"{dialled_by}|{info.host}|{info.port}|{info.driver}".encode()
    return f"auto:{hashlib.sha256(raw).hexdigest()[:32]}"
