"""What fleet to simulate: counts, models, credentials and timings.

A `FleetSpec` is built from Python (tests, benchmarks), from CLI flags or from a JSON/YAML file;
all three end up as the same list of `GroupSpec`s so there is one code path from spec to miners.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from miners.sim.models import ANTMINER, KINDS, PROTOOS, model_for
from miners.sim.single import layout_problem

PROTO_FACTORY_PASSWORD = "proto"
ANTMINER_FACTORY_PASSWORD = "root"
ANTMINER_USER = "root"
FLAVOURS = ("spec", "field")
"""ProtoOS firmware flavours: `spec` answers exactly as the MDK OpenAPI 1.8.2 spec says;
`field` adds the drift seen on real rigs (miner-apis.md §1): fans carry `speed_percentage`,
`system-info.os.hostname`, PSU `state` in `/power-supplies` with PSU faults kept out of
`/errors`."""
LAST_LOOPBACK = ipaddress.IPv4Address("127.255.255.254")


class SpecError(ValueError):
    """A fleet description that cannot be served (reported to the CLI user as is)."""


def seeded_password(seed: int) -> str:
    """The password every miner gets when the operator names none: stable, >= 8 characters."""
    return f"rigwarden-sim-{seed}"


@dataclass(slots=True)
class GroupSpec:
    """Consecutive miners of one kind and model sharing credentials and transport options.

    `password=None` means factory state: ProtoOS `proto` with the default-password gate
    active and no pools, Antminer web login root/root with no pools. `factory_password`
    (ProtoOS) is factory state with a per-unit label password instead of `proto`: the gate is
    active but `/system/status` says `{onboarded: false, password_set: true}`. `flavour` is
    `spec` or `field` (see `FLAVOURS`).
    """

    kind: str
    count: int
    model: str | None = None
    password: str | None = None
    tls: bool = True
    quirks: bool = False
    pools: bool | None = None
    flavour: str = "spec"
    factory_password: str | None = None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"unknown kind {self.kind!r} (use {' or '.join(KINDS)})")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise SpecError(f"count must be a non-negative integer, got {self.count!r}")
        try:
            model_for(self.kind, self.model)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if self.password is not None and (not isinstance(self.password, str) or not self.password):
            raise SpecError("password must be a non-empty string")
        if self.kind == PROTOOS and self.password is not None and len(self.password) < 8:
            raise SpecError("ProtoOS passwords need at least 8 characters")
        for name in ("tls", "quirks"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be true or false")
        if self.flavour not in FLAVOURS:
            raise SpecError(f"flavour must be one of {', '.join(FLAVOURS)}, got {self.flavour!r}")
        unit = self.factory_password
        if unit is not None:
            if self.kind != PROTOOS:
                raise SpecError("factory_password is for ProtoOS groups only")
            if self.password is not None:
                raise SpecError("give either password or factory_password, not both")
            if not isinstance(unit, str) or len(unit) < 8 or unit == PROTO_FACTORY_PASSWORD:
                raise SpecError("factory_password must be 8+ characters and not 'proto'")

    @property
    def factory(self) -> bool:
        return self.password is None

    @property
    def initial_pools(self) -> bool:
        return (not self.factory) if self.pools is None else self.pools


@dataclass(slots=True)
class FleetSpec:
    """The whole simulated fleet; `groups`, when given, replaces the proto/antminer counts."""

    proto: int = 0
    antminer: int = 0
    base: str = "127.77.0.1"
    port_offset: int = 0
    seed: int = 1
    password: str | None = None
    tls: bool = True
    proto_model: str | None = None
    antminer_model: str | None = None
    quirks: bool = False
    groups: list[GroupSpec] | None = None
    stats_delay: float = 3.0
    reboot_downtime: float = 15.0
    token_ttl: float = 3600.0
    refresh_ttl: float = 7 * 86400.0
    flavour: str = "spec"
    factory_password: str | None = None
    single_address: str | None = None  # port-per-miner mode (single.py)
    ssh: bool = False  # each miner also serves SSH on port 22 + offset (ssh.py)

    def resolved_groups(self) -> list[GroupSpec]:
        if self.groups is not None:
            return list(self.groups)
        return [
            GroupSpec(
                PROTOOS,
                self.proto,
                self.proto_model,
                self.password,
                tls=self.tls,
                flavour=self.flavour,
                factory_password=self.factory_password,
            ),
            GroupSpec(
                ANTMINER, self.antminer, self.antminer_model, self.password, quirks=self.quirks
            ),
        ]

    def validate(self) -> None:
        if (
            not isinstance(self.base, str)
            or isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
        ):
            raise SpecError("base must be an address and seed an integer")
        for name in ("stats_delay", "reboot_downtime", "token_ttl", "refresh_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SpecError(f"{name} must be a non-negative number of seconds")
        if self.groups is not None and not isinstance(self.groups, list):
            raise SpecError("groups must be a list")
        groups = self.resolved_groups()
        for group in groups:
            group.validate()
        total = sum(g.count for g in groups)
        if total == 0:
            raise SpecError("nothing to simulate: give --proto and/or --antminer a count above 0")
        first = parse_loopback(self.base)
        if int(first) + total - 1 > int(LAST_LOOPBACK):
            raise SpecError(f"{total} miners from {first} run past the end of 127.0.0.0/8")
        offset = self.port_offset
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 60000:
            raise SpecError("port offset must be an integer between 0 and 60000")
        if not isinstance(self.ssh, bool):
            raise SpecError("ssh must be true or false")
        if self.ssh and self.single_address is not None:
            raise SpecError("ssh needs an address per miner: it can't run in port-per-miner mode")
        if self.single_address is not None:
            if not isinstance(self.single_address, str):
                raise SpecError("single_address must be a loopback address such as 127.0.0.1")
            parse_loopback(self.single_address)
            problem = layout_problem(total, offset)
            if problem is not None:
                raise SpecError(problem)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FleetSpec:
        """Build a spec from a parsed file, rejecting unknown keys so typos fail loudly."""
        if not isinstance(data, Mapping):
            raise SpecError("a fleet spec file must contain a mapping at the top level")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"unknown fleet spec keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        if "groups" in values:
            if not isinstance(values["groups"], list | None):
                raise SpecError("groups must be a list")
            values["groups"] = [_group_from_mapping(g) for g in values["groups"] or []]
        try:
            spec = cls(**values)
        except TypeError as exc:
            raise SpecError(str(exc)) from None
        return spec


def _group_from_mapping(data: Any) -> GroupSpec:
    if not isinstance(data, Mapping):
        raise SpecError("each group must be a mapping with at least kind and count")
    known = {f.name for f in fields(GroupSpec)} | {"default_password"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"unknown group keys: {', '.join(sorted(unknown))}")
    values = dict(data)
    default = values.pop("default_password", False)
    if isinstance(default, str):  # factory state with a per-unit label password
        values["password"], values["factory_password"] = None, default
    elif default:
        values["password"] = None
    try:
        return GroupSpec(**values)
    except TypeError as exc:
        raise SpecError(str(exc)) from None


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML fleet spec (YAML is a superset of JSON, `.json` gets strict parsing)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot parse spec file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {p} must contain a mapping at the top level")
    return data


def parse_loopback(text: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise SpecError(f"not an IPv4 address: {text!r}") from None
    if not addr.is_loopback or addr == ipaddress.IPv4Address("127.0.0.0"):
        raise SpecError(f"simulated miners live on 127.0.0.0/8 only, got {addr}")
    return addr


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str
    index: int
    host: str
    serial: str
    mac: str
    group: GroupSpec = field(compare=False)


_SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def identity(seed: int, kind: str, index: int) -> tuple[str, str]:
    """Serial and MAC for the `index`-th miner of `kind`: stable per seed and unique per fleet.

    The index is embedded verbatim so two miners can never collide, the hash part makes
    different seeds look like different fleets.
    """
    digest = hashlib.blake2b(f"{seed}:{kind}:{index}".encode(), digest_size=8).digest()
    letters = "".join(_SERIAL_ALPHABET[b % len(_SERIAL_ALPHABET)] for b in digest[:6])
    seed_byte = hashlib.blake2b(str(seed).encode(), digest_size=1).digest()[0]
    if kind == PROTOOS:
        serial = f"PR{letters}{index:08d}"
        kind_byte = 0x50
    else:
        serial = f"JY{letters}{index:09d}"
        kind_byte = 0xA4
    octets = (0x02, kind_byte, seed_byte, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)
    return serial, ":".join(f"{o:02X}" for o in octets)


def identities(spec: FleetSpec) -> Iterator[Identity]:
    """Lay the groups out on consecutive loopback addresses, numbering miners per kind."""
    addr = int(parse_loopback(spec.base))
    per_kind = dict.fromkeys(KINDS, 0)
    for group in spec.resolved_groups():
        for _ in range(group.count):
            index = per_kind[group.kind]
            per_kind[group.kind] += 1
            serial, mac = identity(spec.seed, group.kind, index)
            host = str(ipaddress.IPv4Address(addr))
            yield Identity(group.kind, index, host, serial, mac, group)
            addr += 1
