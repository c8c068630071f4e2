"""Adding many miners at once from identities already known (an inventory, a scan's results):
nothing is dialled here, each row is stored as the caller identified it.

Idempotent: a miner already in the org (same identifier) is not added again; when its address
changed (DHCP, another port shift) the row follows it. A row whose address another miner of
the org holds is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from fleet import crypto, dial
from fleet.models import Miner, MinerHealth
from fleet.netguard import AddressRefused
from fleet.services.identity import identifier_for, normalise_mac
from miners import DeviceInfo

MAX_IMPORT = 20_000


@dataclass(frozen=True)
class MinerImport:
    """One miner to store: who it is (``info``), what to call it, where it sits, its login."""

    info: DeviceInfo
    name: str = ""
    username: str = ""
    password: str | None = None
    rack: str = ""
    position: str = ""
    tags: tuple[str, ...] = ()


@dataclass
class ImportResult:
    created: list[Miner] = field(default_factory=list)
    moved: list[Miner] = field(default_factory=list)  # known miners at a new address
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # one reason per row not stored


def _address(info: DeviceInfo) -> tuple[str, int, str, dict[str, int]]:
    return info.host, info.port, info.scheme or "", dict(info.ports)


def _row(site: Site, item: MinerImport, identifier: str, capabilities: list[str]) -> Miner:
    info = item.info
    name = (item.name or "").strip() or info.hostname or f"{info.model or info.make} {info.host}"
    return Miner(
        org_id=site.org_id,
        site=site,
        identifier=identifier,
        name=name[:120],
        make=(info.make or "")[:60],
        model=(info.model or "")[:120],
        firmware=(info.firmware or "")[:120],
        serial=(info.serial or "")[:120],
        mac=normalise_mac(info.mac),
        hostname=(info.hostname or "")[:255],
        host=info.host,
        port=info.port,
        scheme=info.scheme or "",
        driver=info.driver,
        device_info=info.to_dict(),
        capabilities=capabilities,
        health=MinerHealth.UNKNOWN,
        tags=sorted({t.strip()[:40] for t in item.tags if t.strip()})[:20],
        rack=item.rack.strip()[:60],
        position=item.position.strip()[:60],
    )


def _capabilities(items: Sequence[MinerImport]) -> dict[tuple[str, str, str], list[str]]:
    """Per driver and model (connecting does no I/O, but each ask is a trip to the miner loop)."""
    known: dict[tuple[str, str, str], list[str]] = {}
    for item in items:
        key = (item.info.driver, item.info.model, item.info.firmware or "")
        if key not in known:
            known[key] = dial.capabilities(item.info)
    return known


@records_refusals("miner.import")
def miners_import(*, actor: Actor, site: Site, items: Sequence[MinerImport]) -> ImportResult:
    """Store ``items`` in ``site`` (``miner:pair`` there), each added miner audited as
    ``miner.add``; the address check is the one every dial passes."""
    authorize(actor, "miner:pair", site.org_id, site.pk)
    if len(items) > MAX_IMPORT:
        raise ApplicationError(f"At most {MAX_IMPORT} miners at a time.", field="items")
    drivers = set(dial.driver_names())
    for item in items:
        if item.info.driver not in drivers:
            raise ApplicationError(f"Unknown driver '{item.info.driver}'.", field="driver")
        try:
            dial.check_address(item.info.host)
        except AddressRefused as exc:
            raise ApplicationError(str(exc), field="host") from exc
    capabilities = _capabilities(items)
    return _store(actor, site, items, capabilities)


@transaction.atomic
def _store(
    actor: Actor,
    site: Site,
    items: Sequence[MinerImport],
    capabilities: dict[tuple[str, str, str], list[str]],
) -> ImportResult:
    result = ImportResult()
    wanted = {identifier_for(item.info): item for item in items}  # the last of duplicates wins
    known = {
        m.identifier: m
        for m in Miner.unscoped.filter(org_id=site.org_id, identifier__in=list(wanted))
    }
    taken = {
        (m.host, m.port): m.identifier
        for m in Miner.unscoped.filter(
            org_id=site.org_id, host__in={item.info.host for item in items}
        ).only("host", "port", "identifier")
    }
    new: list[tuple[Miner, MinerImport]] = []
    for identifier, item in wanted.items():
        info = item.info
        holder = taken.get((info.host, info.port))
        if holder is not None and holder != identifier:
            result.skipped.append(f"{info.host}:{info.port} is another miner's address")
            continue
        existing = known.get(identifier)
        if existing is not None:
            moved = _move(actor, existing, item.info, capabilities)
            if moved is None:
                result.skipped.append(f"{info.host}:{info.port} is another miner's address")
            elif moved:
                result.moved.append(existing)
            else:
                result.unchanged += 1
            continue
        taken[(info.host, info.port)] = identifier
        key = (info.driver, info.model, info.firmware or "")
        new.append((_row(site, item, identifier, capabilities[key]), item))
    rows = Miner.unscoped.bulk_create([row for row, _ in new])
    with_secret = []
    for row, item in zip(rows, (item for _, item in new), strict=True):
        if item.password is not None:
            row.username = item.username[:120]
            row.secret = crypto.encrypt(item.password, org_id=row.org_id, label=row.secret_label)
            row.credential_version = 1
            with_secret.append(row)
        activity_record(
            actor=actor,
            verb="miner.add",
            org=site.org_id,
            site=site,
            target=row,
            details={"host": row.host, "port": row.port, "driver": row.driver, "via": "import"},
        )
    Miner.unscoped.bulk_update(with_secret, ["username", "secret", "credential_version"])
    result.created = rows
    return result


def _move(
    actor: Actor,
    miner: Miner,
    info: DeviceInfo,
    capabilities: dict[tuple[str, str, str], list[str]],
) -> bool | None:
    """Point a known miner at its new address: False when it hasn't moved, None when another
    miner holds the new one."""
    before = DeviceInfo.from_dict(miner.device_info)
    if _address(before) == _address(info) and miner.host == info.host and miner.port == info.port:
        return False
    miner.host, miner.port, miner.scheme = info.host, info.port, info.scheme or ""
    miner.device_info = info.to_dict()
    miner.capabilities = capabilities[(info.driver, info.model, info.firmware or "")]
    miner.driver = info.driver
    miner.updated_at = timezone.now()
    try:
        with transaction.atomic():
            miner.save(
                update_fields=[
                    "host",
                    "port",
                    "scheme",
                    "device_info",
                    "capabilities",
                    "driver",
                    "updated_at",
                ]
            )
    except IntegrityError:
        return None
    activity_record(
        actor=actor,
        verb="miner.update",
        org=miner.org_id,
        site=miner.site_id,
        target=miner,
        details={
            "changes": {"address": [f"{before.host}:{before.port}", f"{info.host}:{info.port}"]}
        },
    )
    return True
