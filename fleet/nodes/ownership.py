"""Node-owned miners: pairing through a node, the ``assign_miners`` set, the node key.

A miner is dialled by exactly one party: the cloud (``managed_by="cloud"``), one node
(``managed_by="node:<id>"``, ``node`` set), or nobody after its node was revoked
(``managed_by="unassigned"``: a replacement node may claim it). Credentials of node-owned miners
reach the node only as AES-256-GCM under that node's own data key (``encrypt_credential``), and
the data key only sealed to the node's X25519 key in a signed ``node_key`` command.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from fleet import dial
from fleet.models import FleetNode, FleetSettings, Miner, NodeCommand, NodeStatus
from fleet.nodes import keys
from fleet.services.credentials import credentials_for, credentials_store
from fleet.services.identity import identifier_for
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
    if site.org_id != node.org_id:
        raise ApplicationError("The site belongs to another organization.", field="site")
    if node.status != NodeStatus.CONFIRMED:
        raise ApplicationError("Only a confirmed node can own miners.", field="node")
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


def _claim(node: FleetNode, site: Site, host: str, port: int, driver: str, name: str) -> Miner:
    existing = (
        Miner.unscoped.select_for_update().filter(org_id=site.org_id, host=host, port=port).first()
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
                f"'{existing.name}' at {host}:{port} is already owned by a fleet node.",
                field="host",
            )
        existing.node = node
        existing.managed_by = node.managed_by
        existing.site = site
        existing.save(update_fields=["node", "managed_by", "site"])
        return existing
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


def miners_release(node: FleetNode) -> int:
    """Nobody dials them now (revoke); a replacement node may claim them."""
    return Miner.unscoped.filter(node=node).update(
        node=None, managed_by=UNASSIGNED, updated_at=timezone.now()
    )


def assign_payload(node: FleetNode, data_key: bytes | None) -> dict[str, Any]:
    items = []
    for miner in Miner.unscoped.filter(node=node).order_by("id"):
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
    return {"miners": items, "poll_interval_s": poll_interval(node.org_id)}


def _stored(payload: dict[str, Any]) -> dict[str, Any]:
    """What the command log keeps of an ``assign_miners``: ids, no credentials."""
    return {
        "miners": [m["id"] for m in payload["miners"]],
        "poll_interval_s": payload["poll_interval_s"],
    }


def commands_on_hello(node: FleetNode) -> list[dict[str, Any]]:
    """Signed commands a node gets after ``welcome``: rotations it missed, its data key (if
    it has none yet), and its miner set."""
    system = Actor.system("fleetnode")
    out = rotations_missed(node)
    if node.encryption_key and node.data_key_delivered_at is None:
        out.append(node_key_command(node, system))
    out.append(assign_command(node, system))
    return out


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


def rotations_missed(node: FleetNode) -> list[dict[str, Any]]:
    """``key_rotation`` commands from the newest key the node knows to the active one, each
    signed by its predecessor (a node that knows no key yet trusts ``welcome``: nothing)."""
    from fleet.models import CommandKey
    from fleet.nodes.commands import command_sign

    known = set(node.seq_hwm or {})
    chain = list(CommandKey.unscoped.filter(org_id=node.org_id).order_by("created_at", "id"))
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
