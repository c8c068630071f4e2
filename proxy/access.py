"""Who is calling and what they may do to which miner: the proxy's only database work.

Runs synchronously in one hop per request to the proxy's database threads (``proxy.db``):
the session (or API token), the tracked-session and SSO checks the page middleware would do,
the scoped miner lookup (404 outside the caller's scope), the permission for the mapped
method + path, and the request-time address check. It returns a ``Grant`` with a ``Rig``
snapshot; no ORM object leaves this module. The audit insert of a write runs here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.models import ActivityResult, TrackedSession, User
from accounts.services.activity import activity_record
from accounts.services.tokens import api_token_authenticate
from accounts.sso.session import sso_login_current
from fleet.dial import check_address
from fleet.models import Miner
from fleet.netguard import AddressRefused
from fleet.services.credentials import credentials_for
from proxy.pathmap import POOL_ACTION, POOLS, PREFIXES, UNSAFE_GET, classify, http_port
from proxy.paths import under_prefix
from proxy.rigs import Rig


class Refusal(Exception):
    """An answer instead of proxying: HTTP ``status`` with a JSON ``{"error"}``."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Caller:
    user: User
    ip: str | None
    session: bool
    """Cookie session (writes then need CSRF and same origin) rather than an API token."""

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.user, self.ip)


def authenticate(*, authorization: str, session_key: str | None, ip: str | None) -> Caller:
    """The caller from ``Authorization: Token …`` or else the session cookie; 401 otherwise."""
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() == "token":
        token = api_token_authenticate(secret.strip(), ip=ip) if secret.strip() else None
        if token is None:
            raise Refusal(401, "invalid, expired or revoked token")
        user = token.user
        user.rw_token_org = token.org_id
        return Caller(user, ip, session=False)
    if session_key:
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        found = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        if (
            isinstance(found, User)
            and found.is_active
            and sso_login_current(session)
            and _tracked(session_key, found)
        ):
            return Caller(found, ip, session=True)
    raise Refusal(401, "sign in first")


def _tracked(session_key: str, user: Any) -> bool:
    """False for a session a revoke deleted (tracked for somebody else)."""
    owner = TrackedSession.objects.filter(session_key=session_key).values_list("user_id")
    row = owner.first()
    return row is None or row[0] == user.pk


@dataclass(frozen=True, slots=True)
class Grant:
    """What one call may do: the rig to dial, the permission it used, and whether it is
    handled as a write (audited, same-origin) — a stock CGI can be a write on GET."""

    rig: Rig
    permission: str
    write: bool


def resolve(caller: Caller, *, miner_id: int, method: str, path: str) -> Grant:
    """The rig and the permission the call used, or a ``Refusal``."""
    miner = (
        Miner.objects.restrict(caller.user, "miner:read")
        .select_related("node")
        .filter(pk=miner_id)
        .first()
    )
    if miner is None:
        raise Refusal(404, "no such miner")
    prefix = PREFIXES.get(miner.driver)
    if prefix is None:
        raise Refusal(501, f"the {miner.driver} driver has no proxied API")
    relative = under_prefix(path, prefix)
    if relative is None:
        raise Refusal(404, f"{miner.driver} miners are proxied under {prefix}/")
    decision = classify(miner.driver, method, relative)
    if decision.refusal == POOLS:
        raise Refusal(
            403,
            "pool changes go through the audited action",
            action=POOL_ACTION.replace("{id}", str(miner.pk)),
        )
    if decision.refusal == UNSAFE_GET:
        raise Refusal(405, "this CGI changes the miner on GET: send it as a POST")
    if decision.refusal is not None or decision.permission is None:
        raise Refusal(403, "password and credential endpoints are not proxied")
    if not has_perm(caller.user, decision.permission, miner.org_id, miner.site_id):
        raise Refusal(
            403, f"you need {decision.permission} for this", permission=decision.permission
        )
    if miner.node_id is not None:  # the node dials it, checks it and holds its credentials
        return Grant(node_rig(miner), decision.permission, decision.write)
    try:
        return Grant(rig_of(miner), decision.permission, decision.write)
    except AddressRefused as exc:
        raise Refusal(502, f"miner address refused: {exc}") from exc


def rig_of(miner: Miner) -> Rig:
    """The snapshot the proxy dials, after the request-time address check."""
    return _rig(miner, host=check_address(miner.host), credentials=credentials_for(miner))


def _rig(miner: Miner, *, host: str, credentials: Any, **extra: Any) -> Rig:
    """The fields every rig snapshot takes from its miner; the port is always the web API's."""
    return Rig(
        miner_id=miner.pk,
        org_id=miner.org_id,
        site_id=miner.site_id,
        name=miner.name,
        driver=miner.driver,
        host=host,
        port=web_port(miner),  # the web API (an Antminer's CGI), never its RPC port
        scheme=miner.scheme or None,
        credentials=credentials,
        **extra,
    )


def web_port(miner: Miner) -> int:
    """The port of the miner's HTTP API (a stock Antminer's web CGI, not its RPC port)."""
    info = miner.device_info
    return http_port(
        miner.driver, miner.port, info.get("ports") if isinstance(info, dict) else None
    )


def node_rig(miner: Miner) -> Rig:
    """The snapshot of a node-owned miner: reached through ``proxy.tunnelled``."""
    node = miner.node
    assert node is not None
    if not node.channel_name:
        raise Refusal(502, f"fleet node {node.name} is not connected")
    # the node dials it (its own address checks), with the credentials it holds
    return _rig(
        miner,
        host=miner.host,
        credentials=None,
        node_label=f"fleet node {node.name}",
        node_id=node.pk,
    )


def record_write(
    caller: Caller, rig: Rig, *, method: str, path: str, status: int, permission: str
) -> None:
    """The audit event of one proxied write (whatever the rig answered)."""
    activity_record(
        actor=caller.actor,
        verb="miner.proxy_write",
        org=rig.org_id,
        site=rig.site_id,
        target_type="miner",
        target_id=rig.miner_id,
        target_label=rig.name,
        result=ActivityResult.OK if 200 <= status < 400 else ActivityResult.FAILED,
        details={"method": method, "path": path, "status": status, "permission": permission},
    )
