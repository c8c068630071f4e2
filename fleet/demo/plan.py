"""From a simulator inventory to the demo fleet: which site, name, rack and slot each miner
gets, who it is before anyone dials it, and which few get a fault. Pure: no Django, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from miners import Credentials, DeviceInfo

SITES = ("north", "south")
TAG = "simulated"
# How the seeded sites are laid out ("Rack rows A-F", "Containers 1-4"): rack names, slots each.
LAYOUT: dict[str, tuple[str, str, int]] = {
    "north": ("Row", "ABCDEF", 20),
    "south": ("Container", "1234", 40),
}
KINDS = {"protoos": ("protoos", "Proto"), "antminer": ("antminer", "Bitmain")}
ANTMINER_USER = "root"


@dataclass(frozen=True)
class DemoMiner:
    entry: dict[str, Any]
    site: str
    name: str
    rack: str
    position: str

    @property
    def driver(self) -> str:
        return KINDS[self.entry["kind"]][0]

    @property
    def port(self) -> int:
        """The port a driver would settle on: ProtoOS https when served, else the web port."""
        ports: dict[str, int] = self.entry["ports"]
        return ports.get("https", ports["http"])

    @property
    def credentials(self) -> Credentials:
        user = ANTMINER_USER if self.driver == "antminer" else None
        return Credentials(password=self.entry["password"], username=user)

    def inventory_info(self) -> DeviceInfo:
        """Who the inventory says it is, for when it isn't dialled (or doesn't answer)."""
        e, ports = self.entry, self.entry["ports"]
        driver, make = KINDS[e["kind"]]
        companions: dict[str, int] = {}
        if driver == "antminer":
            companions = {"rpc": ports["rpc"], "web": ports["http"]}
        return DeviceInfo(
            driver=driver,
            host=e["host"],
            port=self.port,
            make=make,
            model=e["model"],
            serial=e["serial"],
            mac=e["mac"],
            scheme="https" if "https" in ports else "http",
            ports=companions,
        )


def _slug(model: str) -> str:
    """A short name part from a model: "Antminer S19 XP" → "s19xp", "Rig" → "rig"."""
    words = model.lower().replace("antminer", "").split()
    return re.sub(r"[^a-z0-9]", "", "".join(words)) or "miner"


def plan(inventory: list[dict[str, Any]], sites: tuple[str, ...] = SITES) -> list[DemoMiner]:
    """Each kind split in equal runs over ``sites`` (every site gets a mix); names count per
    site and model, racks fill up in order."""
    miners: list[DemoMiner] = []
    for kind in KINDS:
        entries = [e for e in inventory if e.get("kind") == kind]
        for i, entry in enumerate(entries):
            site = sites[i * len(sites) // len(entries)]
            miners.append(DemoMiner(entry, site, "", "", ""))
    numbered: list[DemoMiner] = []
    counts: dict[tuple[str, str], int] = {}
    slots: dict[str, int] = {}
    for m in miners:
        model = _slug(m.entry["model"])
        n = counts[(m.site, model)] = counts.get((m.site, model), 0) + 1
        slot = slots[m.site] = slots.get(m.site, 0) + 1
        label, racks, per_rack = LAYOUT.get(m.site, ("Rack", "123456789", 50))
        rack = f"{label} {racks[(slot - 1) // per_rack % len(racks)]}"
        position = str((slot - 1) % per_rack + 1)
        numbered.append(DemoMiner(m.entry, m.site, f"{m.site}-{model}-{n:03d}", rack, position))
    return numbered


def sim_id(entry: dict[str, Any]) -> str:
    """The name the simulator's control API knows the miner by (see miners/sim/single.py)."""
    return str(entry.get("id", entry["host"]))


# (kind, fraction of that kind's run, fault, parameters), most telling first; spread over sites
FAULTS: tuple[tuple[str, float, str, dict[str, Any]], ...] = (
    ("antminer", 0.75, "offline", {}),
    ("protoos", 0.10, "overheat", {"severity": "degraded"}),
    ("antminer", 0.25, "slow", {"ms": 1500}),
    ("protoos", 0.60, "dead_board", {"board": 1}),
    ("protoos", 0.85, "dead_pool", {}),
)
FAULTY_SHARE = 10  # at most one miner in this many gets a fault


def faults(inventory: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """A few miners with a fault each, ``(sim id, kind, params)``; none twice, and most of
    the fleet healthy (a fleet under ten miners gets none)."""
    chosen: list[tuple[str, str, dict[str, Any]]] = []
    used: set[str] = set()
    for kind, where, fault, params in FAULTS:
        if len(chosen) >= len(inventory) // FAULTY_SHARE:
            break
        entries = [e for e in inventory if e.get("kind") == kind]
        if not entries:
            continue
        entry = entries[min(len(entries) - 1, int(where * len(entries)))]
        if sim_id(entry) in used:
            continue
        used.add(sim_id(entry))
        chosen.append((sim_id(entry), fault, params))
    return chosen
