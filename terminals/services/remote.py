"""Running an allowlisted remote command on many SSH hosts (``terminals.remote``): checks,
authorization per host's site, the run, and its audit trail (one ``terminal.remote_run`` event
per run and one ``terminal.remote_host`` event per host outcome, tied by the run id)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

from accounts.actor import Actor
from accounts.authz import authorize_on
from accounts.errors import ApplicationError, Forbidden
from accounts.models import ActivityResult
from accounts.services.activity import activity_record, activity_record_refusal
from terminals import remote
from terminals.models import SshHost


@dataclass
class HostResult:
    host: SshHost
    outcome: remote.Outcome

    @property
    def text(self) -> str:
        return self.outcome.output.decode("utf-8", errors="replace")


@dataclass
class RemoteRun:
    id: str
    command: str
    args: dict[str, Any]
    line: str
    results: list[HostResult]


def _check_hosts(hosts: Sequence[SshHost]) -> None:
    if not hosts:
        raise ApplicationError("Pick at least one host.", field="hosts")
    if len(hosts) > remote.MAX_HOSTS:
        raise ApplicationError(f"At most {remote.MAX_HOSTS} hosts per run.", field="hosts")
    if len({h.pk for h in hosts}) != len(hosts):
        raise ApplicationError("A host is listed twice.", field="hosts")
    if len({h.org_id for h in hosts}) != 1:
        raise ApplicationError("All hosts must belong to one organization.", field="hosts")


def remote_run(
    *, actor: Actor, hosts: Sequence[SshHost], command: str, args: Mapping[str, Any]
) -> RemoteRun:
    """``command`` with ``args`` on every host (``terminal:open`` at each host's site). A
    refusal (bad arguments, a host outside the caller's grants) runs nothing anywhere and is
    logged against the first host it concerns."""
    host: SshHost | None = hosts[0] if hosts else None
    try:
        try:
            entry, line = remote.build(command, args)
        except remote.ArgumentError as exc:
            field = "command" if exc.name == "command" else "args"
            message = exc.message if field == "command" else f"{exc.name}: {exc.message}"
            raise ApplicationError(message, field=field) from exc
        _check_hosts(hosts)
        for host in hosts:
            authorize_on(actor, "terminal:open", host)
    except (ApplicationError, Forbidden) as exc:
        activity_record_refusal(actor=actor, verb="terminal.remote_run", target=host, exc=exc)
        raise
    run_id = uuid.uuid4().hex
    outcomes = async_to_sync(remote.run_on_hosts)([h.pk for h in hosts], line)
    results = [HostResult(h, o) for h, o in zip(hosts, outcomes, strict=True)]
    org_id = hosts[0].org_id
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome.status] = counts.get(result.outcome.status, 0) + 1
    activity_record(
        actor=actor,
        verb="terminal.remote_run",
        org=org_id,
        target_type="remote_run",
        target_id=run_id,
        target_label=entry.label,
        result=ActivityResult.OK if counts.get("ok") == len(results) else ActivityResult.FAILED,
        details={"command": entry.name, "args": dict(args), "line": line, "hosts": counts},
    )
    for result in results:
        outcome = result.outcome
        activity_record(
            actor=actor,
            verb="terminal.remote_host",
            org=org_id,
            site=result.host.site_id,
            target=result.host,
            result=ActivityResult.OK if outcome.status == "ok" else ActivityResult.FAILED,
            details={
                "run": run_id,
                "command": entry.name,
                "status": outcome.status,
                "exit_status": outcome.exit_status,
                "bytes": len(outcome.output),
                "truncated": outcome.truncated,
                "error": outcome.error,
                "seconds": outcome.seconds,
            },
        )
    return RemoteRun(run_id, entry.name, dict(args), line, results)
