"""Node-owned miners: pairing through a node, the ``assign_miners`` set, the node key.

A miner is dialled by exactly one party: the cloud (``managed_by="cloud"``), one node
(``managed_by="node:<id>"``, ``node`` set), or nobody after its node was revoked
(``managed_by="unassigned"``: a replacement node may claim it). Credentials of node-owned miners
reach the node only as AES-256-GCM under that node's own data key (``encrypt_credential``), and
the data key only sealed to the node's X25519 key in a signed ``node_key`` command.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from fleet import dial
from fleet.models import (
    CommandKey,
    FleetNode,
    FleetSettings,
    Miner,
    MinerHealth,
    MinerLatest,
    NodeCommand,
    NodeStatus,
)
from fleet.netguard import AddressRefused, check_dialable
from fleet.nodes import keys
from fleet.services.credentials import credentials_for, credentials_store
from fleet.services.identity import identifier_for, normalise_mac
from fleetnode import protocol
from miners import DeviceInfo

CLOUD = "cloud"
UNASSIGNED = "unassigned"


def poll_interval(org_id: int) -> int:
    row = FleetSettings.unscoped.filter(org_id=org_id).first()
    return row.poll_interval_s if row is not None else int(settings.FLEET_POLL_INTERVAL)


@records_refusals("miner.add")
def miner_pair_via_node(
    *,
    actor: Actor,
    node: FleetNode,
    site: Site,
    host: str,
    port: int,
    driver: str,
    username: str = "",
    password: str | None = None,
    name: str = "",
) -> Miner:
    """A miner on the node's LAN: the cloud never dials it; the node polls it from now on."""
    authorize(actor, "miner:pair", site.org_id, site.pk)
    authorize(actor, "fleetnode:manage", node.org_id, node.site_id)
    pairing_check(node, site, host)
    if driver not in dial.driver_names():
        raise ApplicationError(
            f"Unknown driver '{driver}'; use one of {', '.join(dial.driver_names())}.",
            field="driver",
        )
    with transaction.atomic():
        miner = _claim(node, site, host, port, driver, name)
        if password is not None:
            credentials_store(miner, username=username, password=password)
        activity_record(
            actor=actor,
            verb="miner.add",
            org=site.org_id,
            site=site,
            target=miner,
            details={"node": node.pk, "host": host, "port": port, "driver": driver},
        )
    node_assignments_push(node, actor=actor)
    return miner


def pairing_check(node: FleetNode, site: Site, host: str) -> None:
    """What every pairing through a node must pass: a confirmed node, the node's own site (when
    it was added for one) and an address the dial rule allows (``fleet.netguard``, the same rule
    as discovery and the proxy: private ranges or what ``DISCOVERY_ALLOWED_NETWORKS`` lists)."""
    if site.org_id != node.org_id:
        raise ApplicationError("The site belongs to another organization.", field="site")
    if node.status != NodeStatus.CONFIRMED:
        raise ApplicationError("Only a confirmed node can own miners.", field="node")
    if node.site is not None and site.pk != node.site_id:
        raise ApplicationError(
            f"Fleet node '{node.name}' serves site '{node.site.name}'; it can't own a miner "
            f"at site '{site.name}'.",
            field="site",
        )
    try:
        check_dialable(host, settings.DISCOVERY_ALLOWED_NETWORKS)
    except AddressRefused as exc:
        raise ApplicationError(f"Refused {host}: {exc}.", field="host") from exc


def _claim(node: FleetNode, site: Site, host: str, port: int, driver: str, name: str) -> Miner:
    # the same address behind another node is another device (two sites, one 192.168.1.x):
    # only the cloud's miners, unassigned ones and this node's own share this node's addresses
    existing = (
        Miner.unscoped.select_for_update()
        .filter(Q(node__isnull=True) | Q(node=node), org_id=site.org_id, host=host, port=port)
        .order_by("managed_by", "id")  # "cloud" < "node:…" < "unassigned": refusals first
        .first()
    )
    if existing is not None:
        if existing.managed_by == CLOUD:
            raise ApplicationError(
                f"'{existing.name}' at {host}:{port} is paired to the cloud; unpair it before "
                "pairing it to a fleet node.",
                field="host",
            )
        if existing.node_id is not None:
            raise ApplicationError(
                f"'{existing.name}' at {host}:{port} is already paired to this node.",
                field="host",
            )
        return _assign(existing, node, site)
    info = DeviceInfo(driver=driver, host=host, port=port, make="", model="")
    return Miner.unscoped.create(
        org_id=site.org_id,
        site=site,
        identifier=identifier_for(info, dialled_by=node.managed_by),
        name=(name or f"{driver} {host}")[:120],
        host=host,
        port=port,
        driver=driver,
        device_info=info.to_dict(),
        capabilities=dial.capabilities(info),  # the driver's, without dialling (no I/O)
        managed_by=node.managed_by,
        node=node,
    )


def _assign(miner: Miner, node: FleetNode, site: Site) -> Miner:
    """A released (unassigned) miner claimed by ``node``; it stays at its own site."""
    if miner.site_id != site.pk:
        raise ApplicationError(
            f"'{miner.name}' at {miner.host}:{miner.port} belongs to site "
            f"'{miner.site.name}', not '{site.name}'; pair it through a node of its own site.",
            field="site",
        )
    miner.node = node
    miner.managed_by = node.managed_by
    miner.updated_at = timezone.now()
    miner.save(update_fields=["node", "managed_by", "updated_at"])
    return miner


@records_refusals("miner.add")
def miner_reclaim_via_node(
    *,
    actor: Actor,
    node: FleetNode,
    miner: Miner,
    host: str,
    port: int,
    username: str = "",
    password: str | None = None,
) -> Miner:
    """A released miner (its node was revoked) found again by ``node``: the node owns it from
    now on, at the address the node found it."""
    authorize(actor, "miner:pair", miner.org_id, miner.site_id)
    authorize(actor, "fleetnode:manage", node.org_id, node.site_id)
    pairing_check(node, miner.site, host)
    with transaction.atomic():
        locked = Miner.unscoped.select_for_update().select_related("site").get(pk=miner.pk)
        if locked.managed_by != UNASSIGNED:
            raise ApplicationError(
                f"'{locked.name}' is already paired; unpair it first.", field="host"
            )
        taken = Miner.unscoped.filter(node=node, host=host, port=port).exclude(pk=locked.pk)
        if taken.exists():
            raise ApplicationError(
                f"This node already owns a miner at {host}:{port}.", field="host"
            )
        locked.host, locked.port = host, port
        locked.save(update_fields=["host", "port"])
        _assign(locked, node, locked.site)
        if password is not None:
            credentials_store(locked, username=username, password=password)
        activity_record(
            actor=actor,
            verb="miner.add",
            org=locked.org_id,
            site=locked.site_id,
            target=locked,
            details={"node": node.pk, "host": host, "port": port, "reclaimed": True},
        )
    node_assignments_push(node, actor=actor)
    return locked


def miners_release(node: FleetNode) -> int:
    """Nobody dials them now (revoke); a replacement node may claim them. Their health is
    unknown from now on and their last readings are cleared, so the fleet summary stops
    counting a hashrate nobody measures (as for a miner never polled)."""
    ids = list(Miner.unscoped.filter(node=node).values_list("id", flat=True))
    if not ids:
        return 0
    Miner.unscoped.filter(pk__in=ids).update(
        node=None,
        managed_by=UNASSIGNED,
        health=MinerHealth.UNKNOWN,
        updated_at=timezone.now(),
    )
    MinerLatest.objects.filter(miner_id__in=ids).update(
        state="",
        hashrate_ths=None,
        power_w=None,
        efficiency_jth=None,
        power_target_w=None,
        max_temp_c=None,
        updated_at=None,
        last_error={"kind": "unassigned", "message": "Its fleet node was revoked."},
    )
    return len(ids)


# what a node may say about who a miner is (its ``identity`` in a telemetry outcome), with the
# Miner column each lands in and its length
IDENTITY_FIELDS = {"make": 60, "model": 120, "firmware": 120, "serial": 120, "mac": 17,
                   "hostname": 255}  # fmt: skip


def _identity(raw: Any) -> dict[str, str] | None:
    """A node-reported identity, checked: an object of strings (no other types), capped."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, str] = {}
    for name, limit in IDENTITY_FIELDS.items():
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        out[name] = normalise_mac(value) if name == "mac" else value.strip()[:limit]
    return out if any(out.values()) else None


def identities_store(node_id: int, outcomes: list[Any], owned: set[int]) -> int:
    """Store the identity (make, model, firmware, serial, MAC, hostname) a node reports with a
    miner's first poll, as the cloud stores what ``identify`` found at pairing; the miner's
    ``auto:`` identifier becomes ``mac:``/``serial:`` when no other miner of the org has that.
    Outcomes without one cost nothing; a malformed one is ignored (the status still counts).
    Returns how many miners changed."""
    reported: dict[int, dict[str, str]] = {}
    for item in outcomes:
        if not isinstance(item, dict) or "identity" not in item:
            continue
        miner_id = item.get("miner_id")
        found = _identity(item["identity"])
        if isinstance(miner_id, int) and miner_id in owned and found is not None:
            reported[miner_id] = found
    if not reported:
        return 0
    changed = 0
    for miner in Miner.unscoped.filter(pk__in=reported, node_id=node_id):
        found = reported[miner.pk]
        fields = [name for name, value in found.items() if value and getattr(miner, name) != value]
        if not fields:
            continue
        for name in fields:
            setattr(miner, name, found[name])
        miner.device_info = {**miner.device_info, **{n: found[n] for n in fields}}
        info = miner.device_info_for_dial()
        identifier = identifier_for(info, dialled_by=miner.managed_by)
        update = [*fields, "device_info", "updated_at"]
        miner.updated_at = timezone.now()
        miner.save(update_fields=update)
        changed += 1
        if miner.identifier.startswith("auto:") and not identifier.startswith("auto:"):
            try:
                with transaction.atomic():  # another miner of the org may hold it: keep auto:
                    Miner.unscoped.filter(pk=miner.pk).update(identifier=identifier)
            except IntegrityError:
                pass
    return changed


def assign_payload(
    node: FleetNode,
    data_key: bytes | None,
    miners: list[Miner] | None = None,
    interval: int | None = None,
) -> dict[str, Any]:
    miners = _assigned(node) if miners is None else miners
    interval = poll_interval(node.org_id) if interval is None else interval
    items = []
    for miner in miners:
        credential = None
        creds = credentials_for(miner)
        if creds is not None and data_key is not None:
            secret = protocol.canonical_json(
                {"username": creds.username or "", "password": creds.password}
            )
            credential = protocol.encrypt_credential(
                data_key, node.pk, miner.pk, miner.credential_version, secret
            )
        items.append(
            {
                "id": miner.pk,
                "host": miner.host,
                "port": miner.port,
                "driver": miner.driver,
                "device_info": miner.device_info_for_dial().to_dict(),
                "credential": credential,
            }
        )
    version = assignment_version(node, miners, interval, with_key=data_key is not None)
    return {"miners": items, "poll_interval_s": interval, "version": version}


def _assigned(node: FleetNode) -> list[Miner]:
    return list(Miner.unscoped.filter(node=node).order_by("id"))


def assignment_version(
    node: FleetNode, miners: list[Miner], interval: int | float, *, with_key: bool
) -> str:
    """A digest of everything an ``assign_miners`` carries (each credential by its revision,
    under which node key): a node that applied that version and says so in its ``hello``
    (``assignment_version``) is not sent the same set again on reconnect."""
    facts = {
        "miners": [
            [
                m.pk,
                m.host,
                m.port,
                m.driver,
                m.device_info_for_dial().to_dict(),
                m.credential_version if m.secret else None,
            ]
            for m in miners
        ],
        "poll_interval_s": interval,
        "key": hashlib.sha256(bytes(node.encryption_key or b"")).hexdigest()[:16]
        if with_key
        else None,
    }
    return hashlib.sha256(protocol.canonical_json(facts)).hexdigest()[:32]


def _stored(payload: dict[str, Any]) -> dict[str, Any]:
    """What the command log keeps of an ``assign_miners``: ids, no credentials."""
    return {
        "miners": [m["id"] for m in payload["miners"]],
        "poll_interval_s": payload["poll_interval_s"],
    }


def commands_on_hello(
    node: FleetNode, chain: list[CommandKey] | None = None
) -> list[dict[str, Any]]:
    """Signed commands a node gets after ``welcome``: rotations it missed, its data key (if
    it has none yet), and its miner set.

    ``chain``: the org's command keys (``keys.command_keys_all``) as the hello read them. A
    reconnect of a node whose ``hello`` names the current ``assignment_version`` costs two
    queries (the miners, the poll interval) and gets no command; otherwise two more (one block
    of ``seq`` values, one INSERT of the commands)."""
    from fleet.nodes.commands import CommandSpec, commands_sign_set_up

    system = Actor.system("fleetnode")
    chain = keys.command_keys_all(node.org_id) if chain is None else chain
    out = rotations_missed(node, chain)
    active = next((k for k in reversed(chain) if k.active), None)
    active = active or keys.command_key_active(node.org_id)
    data_key = keys.node_data_key(node) if node.encryption_key else None
    specs: list[CommandSpec] = []
    if data_key is not None and node.data_key_delivered_at is None:
        sealed = protocol.seal_to_node(bytes(node.encryption_key or b""), node.pk, data_key)
        specs.append(("node_key", {"sealed": sealed}, {}))
    miners, interval = _assigned(node), poll_interval(node.org_id)
    known = getattr(node, "rw_assignment_version", None)
    current = assignment_version(node, miners, interval, with_key=data_key is not None)
    if specs or known != current:  # a new node key re-encrypts the credentials: always then
        payload = assign_payload(node, data_key, miners, interval)
        specs.append(("assign_miners", payload, _stored(payload)))
    return out + commands_sign_set_up(node=node, key=active, specs=specs, actor=system)


def assign_command(node: FleetNode, actor: Actor) -> dict[str, Any]:
    """A signed ``assign_miners`` with the node's full miner set (credentials under its key)."""
    from fleet.nodes.commands import command_sign

    data_key = keys.node_data_key(node) if node.encryption_key else None
    payload = assign_payload(node, data_key)
    _row, signed = command_sign(
        node=node,
        kind="assign_miners",
        payload=payload,
        actor=actor,
        stored_payload=_stored(payload),
    )
    return signed


def node_key_command(node: FleetNode, actor: Actor) -> dict[str, Any]:
    from fleet.nodes.commands import command_sign

    data_key = keys.node_data_key(node)
    sealed = protocol.seal_to_node(bytes(node.encryption_key or b""), node.pk, data_key)
    _row, signed = command_sign(
        node=node, kind="node_key", payload={"sealed": sealed}, actor=actor, stored_payload={}
    )
    return signed


def rotations_missed(
    node: FleetNode, chain: list[CommandKey] | None = None
) -> list[dict[str, Any]]:
    """``key_rotation`` commands from the newest key the node knows to the active one, each
    signed by its predecessor (a node that knows no key yet trusts ``welcome``: nothing)."""
    from fleet.nodes.commands import command_sign

    known = set(node.seq_hwm or {})
    if not known:
        return []
    chain = keys.command_keys_all(node.org_id) if chain is None else chain
    if not known or not chain or chain[-1].kid in known:
        return []
    start = max((i for i, k in enumerate(chain) if k.kid in known), default=None)
    if start is None:
        return []
    out = []
    for old, new in zip(chain[start:], chain[start + 1 :], strict=False):
        payload = {"new_kid": new.kid, "new_public_key": protocol.b64encode(bytes(new.public_key))}
        _row, signed = command_sign(
            node=node,
            kind="key_rotation",
            payload=payload,
            actor=Actor.system("fleetnode"),
            key_id=old.pk,
        )
        out.append(signed)
    return out


def command_done(row: NodeCommand, status: str, result: Any) -> None:
    """Side effects of a final ack."""
    if row.kind == "node_key" and status == "ok":
        FleetNode.unscoped.filter(pk=row.node_id).update(data_key_delivered_at=timezone.now())


def node_assignments_push(node: FleetNode, *, actor: Actor) -> None:
    """Send the node its current miner set (if it is connected; else it gets it on hello)."""
    from asgiref.sync import async_to_sync

    from fleet.nodes.commands import command_deliver

    node = FleetNode.unscoped.get(pk=node.pk)
    if not node.channel_name or node.status != NodeStatus.CONFIRMED:
        return
    signed = assign_command(node, actor)
    transaction.on_commit(lambda: async_to_sync(command_deliver)(signed, node.pk))
