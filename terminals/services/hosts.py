"""Adding, editing and removing SSH hosts; trusting their host keys."""

from __future__ import annotations

import asyncssh
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from fleet import crypto, dial
from fleet.models import Miner
from fleet.netguard import AddressRefused
from terminals.models import AuthMethod, SshHost

_SECRET_MAX = 16_384


def _address(value: str) -> str:
    try:
        return dial.check_address(value)
    except AddressRefused as exc:
        raise ApplicationError(str(exc), field="address") from exc


def _check_secret(method: str, secret: str) -> None:
    if not secret or len(secret) > _SECRET_MAX:
        raise ApplicationError(f"Give 1 to {_SECRET_MAX} characters.", field="secret")
    if method == AuthMethod.KEY:
        try:
            asyncssh.import_private_key(secret)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ApplicationError(
                "Not an unencrypted OpenSSH or PEM private key.", field="secret"
            ) from exc


def _check_miner(site: Site, miner: Miner | None) -> None:
    if miner is not None and miner.org_id != site.org_id:
        raise ApplicationError("That miner belongs to another organization.", field="miner")


def _check_jump(site: Site, jump: SshHost | None, host: SshHost | None = None) -> None:
    """One hop: a host of the same organization that isn't reached through another itself."""
    if jump is None:
        return
    if jump.org_id != site.org_id:
        raise ApplicationError("That host belongs to another organization.", field="jump_host")
    if host is not None and jump.pk == host.pk:
        raise ApplicationError("A host can't be its own jump host.", field="jump_host")
    if jump.jump_host_id is not None:
        raise ApplicationError("The jump host is itself reached through one.", field="jump_host")
    if host is not None and host.jumped.exists():
        raise ApplicationError("Other hosts jump through this one.", field="jump_host")


def _store_secret(host: SshHost, secret: str) -> None:
    host.secret = crypto.encrypt(secret, org_id=host.org_id, label=host.secret_label)
    host.save(update_fields=["secret"])


def host_secret(host: SshHost) -> str:
    """The decrypted password or private key, for the session manager only."""
    if host.secret is None:
        raise ApplicationError("This host has no credentials.", field="secret")
    return crypto.decrypt(host.secret, org_id=host.org_id, label=host.secret_label)


@records_refusals("sshhost.add")
@transaction.atomic
def host_add(
    *,
    actor: Actor,
    site: Site,
    name: str,
    address: str,
    port: int,
    username: str,
    auth_method: str,
    secret: str,
    miner: Miner | None = None,
    jump_host: SshHost | None = None,
) -> SshHost:
    authorize(actor, "terminal:manage", site.org_id, site.pk)
    _check_secret(auth_method, secret)
    _check_miner(site, miner)
    _check_jump(site, jump_host)
    try:
        with transaction.atomic():
            host = SshHost.unscoped.create(
                org_id=site.org_id,
                site=site,
                name=name.strip(),
                address=_address(address),
                port=port,
                username=username,
                auth_method=auth_method,
                miner=miner,
                jump_host=jump_host,
            )
    except IntegrityError as exc:
        raise ApplicationError("A host with this name exists.", field="name") from exc
    _store_secret(host, secret)
    activity_record(
        actor=actor,
        verb="sshhost.add",
        org=site.org_id,
        site=site,
        target=host,
        details={
            "address": host.address,
            "port": host.port,
            "username": host.username,
            "jump_host": host.jump_host_id,
        },
    )
    return host


@records_refusals("sshhost.update")
@transaction.atomic
def host_update(
    *,
    actor: Actor,
    host: SshHost,
    name: str | None = None,
    address: str | None = None,
    port: int | None = None,
    username: str | None = None,
    auth_method: str | None = None,
    secret: str | None = None,
    jump_host: SshHost | None = None,
    clear_jump_host: bool = False,
) -> SshHost:
    """Edit; a new address or port forgets the pinned host key (it is another machine)."""
    authorize_on(actor, "terminal:manage", host)
    changes: dict[str, list[object]] = {}
    if jump_host is not None or clear_jump_host:
        _check_jump(host.site, jump_host, host)
        new_jump = jump_host.pk if jump_host is not None else None
        if new_jump != host.jump_host_id:
            changes["jump_host"] = [host.jump_host_id, new_jump]
            host.jump_host = jump_host
    new_address = _address(address) if address is not None else host.address
    values = {"name": name.strip() if name is not None else None, "port": port}
    values |= {"username": username, "address": new_address}
    for field, value in values.items():
        if value is not None and value != getattr(host, field):
            changes[field] = [getattr(host, field), value]
            setattr(host, field, value)
    if auth_method is not None and auth_method != host.auth_method and secret is None:
        raise ApplicationError("Give the new secret with the new method.", field="secret")
    if secret is not None:
        method = auth_method or host.auth_method
        _check_secret(method, secret)
        changes["secret"] = ["***", "***"]
        host.auth_method = method
    if {"address", "port"} & set(changes):
        host.host_key = host.host_key_fingerprint = ""
        host.presented_key = host.presented_fingerprint = ""
        host.host_key_trusted_at = None
    if not changes:
        return host
    host.updated_at = timezone.now()
    try:
        with transaction.atomic():
            host.save()
    except IntegrityError as exc:
        raise ApplicationError("A host with this name exists.", field="name") from exc
    if secret is not None:
        _store_secret(host, secret)
    activity_record(
        actor=actor,
        verb="sshhost.update",
        org=host.org_id,
        site=host.site_id,
        target=host,
        details={"changes": changes},
    )
    return host


@records_refusals("sshhost.delete")
@transaction.atomic
def host_delete(*, actor: Actor, host: SshHost) -> None:
    authorize_on(actor, "terminal:manage", host)
    if host.jumped.exists():
        raise ApplicationError("Other hosts jump through this one.", field="host")
    activity_record(
        actor=actor, verb="sshhost.delete", org=host.org_id, site=host.site_id, target=host
    )
    host.delete()


@records_refusals("sshhost.retrust")
@transaction.atomic
def host_retrust(*, actor: Actor, host: SshHost) -> SshHost:
    """Accept the key the host presented instead of the pinned one (an audit event)."""
    authorize_on(actor, "terminal:manage", host)
    if not host.presented_key:
        raise ApplicationError("The host key has not changed.", field="host_key")
    before = host.host_key_fingerprint
    host.host_key, host.host_key_fingerprint = host.presented_key, host.presented_fingerprint
    host.presented_key = host.presented_fingerprint = ""
    host.host_key_trusted_at = timezone.now()
    host.save()
    activity_record(
        actor=actor,
        verb="sshhost.retrust",
        org=host.org_id,
        site=host.site_id,
        target=host,
        details={"from": before, "to": host.host_key_fingerprint},
    )
    return host


def fingerprint(key_line: str) -> str:
    return str(asyncssh.import_public_key(key_line).get_fingerprint("sha256"))


@transaction.atomic
def host_key_seen(host_id: int, key_line: str) -> bool:
    """What the session manager reports after a handshake: the first key is trusted (TOFU), a
    different one is kept aside and refused. True when the key is the trusted one."""
    host = SshHost.unscoped.select_for_update().get(pk=host_id)
    if host.host_key == key_line:
        return True
    actor = Actor.system("terminals")
    print_ = fingerprint(key_line)
    if not host.host_key:
        host.host_key, host.host_key_fingerprint = key_line, print_
        host.host_key_trusted_at = timezone.now()
        host.save(update_fields=["host_key", "host_key_fingerprint", "host_key_trusted_at"])
        verb, details = "sshhost.key_trusted", {"fingerprint": print_}
        result = True
    else:
        host.presented_key, host.presented_fingerprint = key_line, print_
        host.save(update_fields=["presented_key", "presented_fingerprint"])
        verb = "sshhost.key_changed"
        details = {"pinned": host.host_key_fingerprint, "presented": print_}
        result = False
    activity_record(
        actor=actor, verb=verb, org=host.org_id, site=host.site_id, target=host, details=details
    )
    return result
