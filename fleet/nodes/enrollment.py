"""Enrollment: codes, registration with proof of possession, confirmation, the api key."""

from __future__ import annotations

import datetime as dt
import hmac
import sys

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Organization, Site
from accounts.services.activity import activity_record, records_refusals
from fleet.models import EnrollmentCode, FleetNode, NodeStatus
from fleet.models.nodes import ENROLLMENT_CODE_TTL
from fleet.nodes.errors import NodeRefused
from fleet.nodes.metrics import HANDSHAKES
from fleet.nodes.secrets import new_token, secret_hash
from fleetnode import protocol

CODE_PREFIX = "rwe_"
API_KEY_PREFIX = "rwk_"


def enroll_command(server: str, code: str) -> str:
    """The agent command "Add node" and the API print: the interpreter running this server
    (so it works as printed on this machine; ``docs/fleet-node.md`` installs the agent
    elsewhere and runs it with ``python3``), a state dir and a name to edit."""
    return (
        f"{sys.executable} -m fleetnode --state-dir ./fleetnode-state enroll "
        f"--server {server} --code {code} --name node-1"
    )


@records_refusals("fleetnode.enrollment_code")
def enrollment_code_create(
    *, actor: Actor, org: Organization, site: Site | None = None
) -> tuple[str, EnrollmentCode]:
    """A one-use code (192 random bits, stored hashed) valid for an hour: (code, row)."""
    if site is not None and site.org_id != org.pk:
        raise ApplicationError("The site belongs to another organization.", field="site")
    authorize(actor, "fleetnode:manage", org.pk, site.pk if site else None)
    code, digest = new_token(CODE_PREFIX, 24)
    row = EnrollmentCode.unscoped.create(
        org=org,
        site=site,
        code_hash=digest,
        created_by=actor.user,
        expires_at=timezone.now() + ENROLLMENT_CODE_TTL,
    )
    activity_record(
        actor=actor,
        verb="fleetnode.enrollment_code",
        org=org,
        site=site,
        target=row,
        details={"expires_at": row.expires_at.isoformat()},
    )
    return code, row


def enrollment_codes_outstanding(org: Organization) -> list[EnrollmentCode]:
    """Unused codes of ``org`` still valid (the code itself is not stored: only its row)."""
    now = timezone.now()
    rows = EnrollmentCode.unscoped.filter(org=org, used_at__isnull=True, expires_at__gt=now)
    return list(rows.select_related("site", "created_by").order_by("-created_at", "-id")[:50])


@records_refusals("fleetnode.enrollment_code_cancel")
@transaction.atomic
def enrollment_code_cancel(*, actor: Actor, code: EnrollmentCode) -> EnrollmentCode:
    """An unused code stops working now (it expires at once: a node can't register with it)."""
    authorize(actor, "fleetnode:manage", code.org_id, code.site_id)
    row = EnrollmentCode.unscoped.select_for_update().get(pk=code.pk)
    now = timezone.now()
    if row.used_at is not None:
        raise ApplicationError("This enrollment code was already used.", field="code")
    if row.expires_at <= now:
        raise ApplicationError("This enrollment code has already expired.", field="code")
    row.expires_at = now
    row.save(update_fields=["expires_at"])
    activity_record(
        actor=actor,
        verb="fleetnode.enrollment_code_cancel",
        org=row.org_id,
        site=row.site_id,
        target=row,
        details={},
    )
    return row


@transaction.atomic
def node_register(
    *,
    code: str,
    name: str,
    hostname: str,
    agent_version: str,
    identity_key: bytes,
    proof: bytes,
    ip: str | None = None,
) -> FleetNode:
    """A node proves it holds ``identity_key`` by signing the code; the code is spent."""
    row = EnrollmentCode.unscoped.select_for_update().filter(code_hash=secret_hash(code)).first()
    now = timezone.now()
    if row is None:
        raise ApplicationError("Unknown enrollment code.", field="code")
    if row.used_at is not None:
        raise ApplicationError("This enrollment code was already used.", field="code")
    if row.expires_at <= now:
        raise ApplicationError("This enrollment code has expired.", field="code")
    if not protocol.verify(identity_key, proof, code.encode("utf-8")):
        HANDSHAKES.labels("register", "bad_proof").inc()
        raise ApplicationError(
            "The proof is not a signature of the code by this identity key.", field="proof"
        )
    if FleetNode.unscoped.filter(identity_key=identity_key).exists():
        raise ApplicationError("This identity key is already registered.", field="identity_key")
    node = FleetNode.unscoped.create(
        org_id=row.org_id,
        site_id=row.site_id,
        name=name,
        hostname=hostname,
        agent_version=agent_version,
        identity_key=identity_key,
        fingerprint=protocol.fingerprint(identity_key),
    )
    row.used_at = now
    row.node = node
    row.save(update_fields=["used_at", "node"])
    activity_record(
        actor=Actor.node(f"node:{node.pk} {name}", ip),
        verb="fleetnode.register",
        org=node.org_id,
        site=node.site_id,
        target=node,
        details={"fingerprint": node.fingerprint, "hostname": hostname},
    )
    HANDSHAKES.labels("register", "ok").inc()
    return node


def _normal_fingerprint(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch in "0123456789abcdef")


@records_refusals("fleetnode.confirm")
@transaction.atomic
def node_confirm(*, actor: Actor, node: FleetNode, fingerprint: str) -> FleetNode:
    """The operator read the fingerprint the node printed; it must match the registered key."""
    authorize_on(actor, "fleetnode:manage", node)
    node = FleetNode.unscoped.select_for_update().get(pk=node.pk)
    if node.status != NodeStatus.AWAITING:
        raise ApplicationError(f"This node is {node.get_status_display().lower()}.")
    if node.expires_at <= timezone.now():
        raise ApplicationError("This registration expired; enroll the node again.")
    if not hmac.compare_digest(_normal_fingerprint(fingerprint), node.fingerprint):
        raise ApplicationError(
            "The fingerprint does not match the key this node registered with. Do not confirm "
            "a node whose fingerprint differs from the one it printed.",
            field="fingerprint",
        )
    node.status = NodeStatus.CONFIRMED
    node.confirmed_at = timezone.now()
    node.confirmed_by = actor.user
    node.save(update_fields=["status", "confirmed_at", "confirmed_by"])
    activity_record(
        actor=actor,
        verb="fleetnode.confirm",
        org=node.org_id,
        site=node.site_id,
        target=node,
        details={"fingerprint": node.fingerprint},
    )
    return node


@transaction.atomic
def node_credentials_issue(
    *, node_id: int, ts: int, sig: bytes, ip: str | None = None, now: dt.datetime | None = None
) -> str:
    """The api key, once, to a confirmed node that signs ``"{node_id}|{ts}"`` (±5 min)."""
    now = now or timezone.now()
    if abs(now.timestamp() - ts) > protocol.CREDENTIALS_TS_SKEW_S:
        raise ApplicationError("ts is more than 5 minutes away from the server's time.", field="ts")
    node = FleetNode.unscoped.select_for_update().filter(pk=node_id).first()
    if node is None or not protocol.verify(
        bytes(node.identity_key), sig, f"{node_id}|{ts}".encode()
    ):
        HANDSHAKES.labels("credentials", "bad_signature").inc()
        raise NodeRefused(401, "Unknown node or a signature that doesn't verify.")
    if node.status == NodeStatus.REVOKED:
        raise NodeRefused(403, "This node is revoked.")
    if node.status == NodeStatus.AWAITING:
        raise NodeRefused(409, "Awaiting confirmation by an operator.")
    if node.api_key_hash:
        raise NodeRefused(410, "The api key of this node was already issued.")
    api_key, digest = new_token(API_KEY_PREFIX, 32)
    node.api_key_hash = digest
    node.api_key_issued_at = now
    node.save(update_fields=["api_key_hash", "api_key_issued_at"])
    activity_record(
        actor=Actor.node(f"node:{node.pk} {node.name}", ip),
        verb="fleetnode.credentials",
        org=node.org_id,
        site=node.site_id,
        target=node,
    )
    HANDSHAKES.labels("credentials", "ok").inc()
    return api_key


def nodes_expire_unconfirmed(*, now: dt.datetime | None = None) -> int:
    """Delete registrations nobody confirmed within 24 h (they own nothing yet)."""
    now = now or timezone.now()
    stale = FleetNode.unscoped.filter(status=NodeStatus.AWAITING, expires_at__lte=now)
    count = 0
    for node in stale:
        activity_record(
            actor=Actor.system("fleetnode-expiry"),
            verb="fleetnode.expire",
            org=node.org_id,
            site=node.site_id,
            target=node,
        )
        node.delete()
        count += 1
    return count
