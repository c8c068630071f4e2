"""Adding, editing and removing miners."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from fleet import dial
from fleet.models import Miner, MinerHealth
from fleet.netguard import AddressRefused
from fleet.services.credentials import credentials_for, credentials_store
from fleet.services.identity import identifier_for, normalise_mac
from miners import AuthFailed, Credentials, DefaultPasswordActive, DeviceInfo, MinerError

_NAME_MAX = 120


def _driver_names() -> list[str]:
    return dial.driver_names()


def _identify(
    host: str, port: int | None, driver: str | None, credentials: Credentials | None
) -> DeviceInfo:
    if driver and driver not in _driver_names():
        raise ApplicationError(
            f"Unknown driver '{driver}'; use one of {', '.join(_driver_names())}.", field="driver"
        )
    try:
        info = dial.identify(host, port, driver=driver, credentials=credentials)
    except AddressRefused as exc:
        raise ApplicationError(str(exc), field="host") from exc
    where = f"{host}:{port}" if port else host
    if info is None:
        raise ApplicationError(f"Nothing at {where} answered like a miner.", field="host")
    return info


def _verify(info: DeviceInfo, credentials: Credentials | None) -> str:
    """The health the login gives: refused → 400; the factory password → default_password."""
    if credentials is None:
        return MinerHealth.UNKNOWN
    try:
        dial.status(info, credentials)
    except DefaultPasswordActive:
        return MinerHealth.DEFAULT_PASSWORD
    except AuthFailed as exc:
        raise ApplicationError(
            f"The miner refused the login: {exc.message}", field="password"
        ) from exc
    except MinerError as exc:
        raise ApplicationError(
            f"The miner answered its identity but not a status read: {exc.message}",
            field="host",
        ) from exc
    return MinerHealth.UNKNOWN


def _name(value: str, fallback: str) -> str:
    name = (value or "").strip() or fallback
    if len(name) > _NAME_MAX:
        raise ApplicationError(f"At most {_NAME_MAX} characters.", field="name")
    return name


@records_refusals("miner.add")
def miner_add(
    *,
    actor: Actor,
    site: Site,
    host: str,
    port: int | None = None,
    driver: str | None = None,
    username: str = "",
    password: str | None = None,
    name: str = "",
) -> Miner:
    """Identify the device through the drivers and store what it reports (outside the
    transaction: the dial takes seconds and holds no lock)."""
    authorize(actor, "miner:pair", site.org_id, site.pk)
    given = (
        Credentials(password=password, username=username or None) if password is not None else None
    )
    # identified with the credentials given: a stock Antminer shows its MAC and serial only
    # behind its web login, and a miner is known by them (``mac:``), not by its address
    info = _identify(host, port, driver, given)
    credentials = given or dial.default_credentials(info.driver)
    health = _verify(info, credentials)
    return _miner_create(
        actor=actor,
        site=site,
        info=info,
        health=health,
        name=_name(name, info.hostname or f"{info.model or info.make} {info.host}"),
        username=username if password is not None else "",
        password=password,
    )


def rig_ports(miner: Miner) -> set[int]:
    """The ports ``miner`` answers on as one rig: its own and the companions its driver named
    (a stock Antminer's RPC and web ports)."""
    ports = (miner.device_info or {}).get("ports") or {}
    named = {p for p in ports.values() if isinstance(p, int)} if isinstance(ports, dict) else set()
    return {miner.port, *named}


def miner_at_address(
    org_id: int,
    host: str,
    port: int,
    driver: str,
    companions: dict[str, int] | None = None,
    *,
    node_id: int | None = None,
) -> Miner | None:
    """The miner of this dialler (the cloud, or fleet node ``node_id``) that is the rig at
    ``host`` answering on ``port``: the same driver, and ``port`` (or one of the ``companions``
    the device named) one of the rig's ports. How a device whose identity is weak (``auto:``:
    no MAC, no serial) is still recognised as the miner it is."""
    dialler = {"node_id": node_id} if node_id is not None else {"managed_by": "cloud"}
    wanted = {port, *(companions or {}).values()}
    for miner in Miner.unscoped.filter(org_id=org_id, host=host, driver=driver, **dialler):
        if rig_ports(miner) & wanted:
            return miner
    return None


RPC_SCHEME = "tcp"  # what discovery reports for a rig's RPC port (miners.scan.Found)


def _endpoint_kind(scheme: str) -> str:
    return "rpc" if scheme == RPC_SCHEME else "web"


def miner_follow(
    miner: Miner, reports: Sequence[tuple[str, int, str]], *, same_scheme: bool = False
) -> bool:
    """The rig of ``miner`` answered at another address (DHCP): the miner follows it, taking
    host, port and scheme from ONE of ``reports`` (``(host, port, scheme)``, each what worked
    there), so a port is never dialled with another port's scheme. The report chosen is of
    the miner's own kind of endpoint (web API, or RPC), the same scheme and port first; with
    ``same_scheme`` only one of the miner's scheme will do. The same host on another port is
    the same rig at the same address: nothing changes. Returns whether the miner moved. Not
    audited: it records what the network did, no one's decision."""
    if not reports or any(host == miner.host for host, _port, _scheme in reports):
        return False
    current = str((miner.device_info or {}).get("scheme") or miner.scheme or "")
    fitting = [r for r in reports if _endpoint_kind(r[2]) == _endpoint_kind(current)]
    if same_scheme and current:
        fitting = [r for r in fitting if r[2] == current]
    if not fitting:
        return False  # only another kind of port answered (an Antminer's RPC): not enough
    host, port, scheme = min(
        fitting, key=lambda r: (r[2] != current, r[1] != miner.port, r[2] != "https")
    )
    taken = Miner.unscoped.filter(org_id=miner.org_id, host=host, port=port).exclude(pk=miner.pk)
    if taken.exists():
        return False
    info = dict(miner.device_info or {})
    info.update({"host": host, "port": port})
    if scheme:
        info["scheme"] = scheme
    miner.host, miner.port, miner.device_info = host, port, info
    miner.scheme = scheme or miner.scheme
    miner.updated_at = timezone.now()
    Miner.unscoped.filter(pk=miner.pk).update(
        host=host,
        port=port,
        scheme=miner.scheme,
        device_info=info,
        updated_at=miner.updated_at,
    )
    return True


@transaction.atomic
def _miner_create(
    *,
    actor: Actor,
    site: Site,
    info: DeviceInfo,
    health: str,
    name: str,
    username: str,
    password: str | None,
) -> Miner:
    identifier = identifier_for(info)
    existing = Miner.unscoped.filter(org_id=site.org_id, identifier=identifier).first()
    if existing is None:
        existing = miner_at_address(site.org_id, info.host, info.port, info.driver, info.ports)
    if existing is None:
        existing = Miner.unscoped.filter(org_id=site.org_id, host=info.host, port=info.port).first()
    if existing is not None and existing.managed_by != "cloud":
        raise ApplicationError(
            f"'{existing.name}' is paired to a fleet node; unpair it before pairing it to the "
            "cloud.",
            field="host",
        )
    if existing is not None:
        raise ApplicationError(
            f"This miner is already in the fleet as '{existing.name}'.", field="host"
        )
    try:
        with transaction.atomic():
            miner = Miner.unscoped.create(
                org_id=site.org_id,
                site=site,
                identifier=identifier,
                name=name,
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
                capabilities=dial.capabilities(info),
                health=health,
            )
    except IntegrityError as exc:
        raise ApplicationError("This miner was just added.", field="host") from exc
    if password is not None:
        credentials_store(miner, username=username, password=password)
    activity_record(
        actor=actor,
        verb="miner.add",
        org=site.org_id,
        site=site,
        target=miner,
        details={"host": miner.host, "port": miner.port, "driver": miner.driver},
    )
    return miner


@records_refusals("miner.update")
@transaction.atomic
def miner_update(
    *,
    actor: Actor,
    miner: Miner,
    name: str | None = None,
    tags: list[str] | None = None,
    rack: str | None = None,
    position: str | None = None,
) -> Miner:
    authorize_on(actor, "miner:rename", miner)
    changes: dict[str, list[object]] = {}
    if name is not None and name.strip() != miner.name:
        new_name = _name(name, miner.name)
        changes["name"] = [miner.name, new_name]
        miner.name = new_name
    if tags is not None:
        clean = sorted({t.strip()[:40] for t in tags if t.strip()})
        if len(clean) > 20:
            raise ApplicationError("At most 20 tags.", field="tags")
        if clean != miner.tags:
            changes["tags"] = [miner.tags, clean]
            miner.tags = clean
    for field, value in (("rack", rack), ("position", position)):
        if value is not None and value.strip()[:60] != getattr(miner, field):
            changes[field] = [getattr(miner, field), value.strip()[:60]]
            setattr(miner, field, value.strip()[:60])
    if not changes:
        return miner
    miner.updated_at = timezone.now()
    miner.save()
    activity_record(
        actor=actor,
        verb="miner.update",
        org=miner.org_id,
        site=miner.site_id,
        target=miner,
        details={"changes": changes},
    )
    return miner


@records_refusals("miner.move")
@transaction.atomic
def miner_move(*, actor: Actor, miner: Miner, site: Site) -> Miner:
    """To another site of the same org: unpair here, pair there."""
    if site.org_id != miner.org_id:
        raise ApplicationError("That site belongs to another organization.", field="site")
    if site.pk == miner.site_id:
        return miner
    authorize_on(actor, "miner:unpair", miner)
    authorize(actor, "miner:pair", site.org_id, site.pk)
    before = miner.site_id
    miner.site = site
    miner.updated_at = timezone.now()
    miner.save(update_fields=["site", "updated_at"])
    activity_record(
        actor=actor,
        verb="miner.move",
        org=miner.org_id,
        site=site,
        target=miner,
        details={"from_site": before, "to_site": site.pk},
    )
    return miner


@records_refusals("miner.credentials")
@transaction.atomic
def miner_set_credentials(
    *, actor: Actor, miner: Miner, username: str = "", password: str | None
) -> Miner:
    """New credentials for the server to use (the rig's own password is not changed)."""
    authorize_on(actor, "miner:pair", miner)
    credentials_store(miner, username=username, password=password)
    activity_record(
        actor=actor,
        verb="miner.credentials",
        org=miner.org_id,
        site=miner.site_id,
        target=miner,
        details={"username": miner.username, "version": miner.credential_version},
    )
    return miner


@records_refusals("miner.delete")
@transaction.atomic
def miner_delete(*, actor: Actor, miner: Miner) -> None:
    """Forget the miner: its credentials go with it; the rig itself is not touched."""
    authorize_on(actor, "miner:delete", miner)
    activity_record(
        actor=actor,
        verb="miner.delete",
        org=miner.org_id,
        site=miner.site_id,
        target=miner,
        details={"host": miner.host, "identifier": miner.identifier},
    )
    miner.delete()


@records_refusals("miner.logs")
def miner_logs(
    *, actor: Actor, miner: Miner, lines: int = 200, source: str | None = None
) -> list[str]:
    """Read the rig's own log (a read, but of operational detail: permission and audit)."""
    authorize_on(actor, "miner:download_logs", miner)
    if "logs" not in miner.capabilities:
        raise ApplicationError(f"{miner.name} can't give its logs.", field="source")
    credentials = credentials_for(miner) or dial.default_credentials(miner.driver)
    if credentials is None:
        raise ApplicationError("No credentials for this miner.", field="source")
    try:
        content = dial.logs(miner.device_info_for_dial(), credentials, lines=lines, source=source)
    except AddressRefused as exc:
        raise ApplicationError(str(exc), field="host") from exc
    except MinerError as exc:
        raise ApplicationError(f"The miner didn't give its logs: {exc.message}") from exc
    activity_record(
        actor=actor,
        verb="miner.logs",
        org=miner.org_id,
        site=miner.site_id,
        target=miner,
        details={"lines": len(content), "source": source or ""},
    )
    return content
