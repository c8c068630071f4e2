"""Terminal session rows: opening one (caps), who may attach, and their end (one audit
event per session)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize_on, has_perm
from accounts.errors import ApplicationError
from accounts.models import User
from accounts.services.activity import activity_record, records_refusals
from terminals.models import OPEN_STATES, SessionState, SshHost, TerminalSession

TERM_TYPES = frozenset({"xterm-256color", "xterm", "vt100", "linux"})
MAX_COLS, MAX_ROWS = 1000, 500


def check_size(cols: int, rows: int) -> None:
    if not (1 <= cols <= MAX_COLS and 1 <= rows <= MAX_ROWS):
        raise ApplicationError(f"cols 1–{MAX_COLS}, rows 1–{MAX_ROWS}.", field="cols")


@records_refusals("terminal.open")
@transaction.atomic
def session_open(
    *, actor: Actor, host: SshHost, cols: int = 80, rows: int = 24, term: str = "xterm-256color"
) -> TerminalSession:
    """A session row for the owner to attach to; the SSH connection starts on first attach."""
    authorize_on(actor, "terminal:open", host)
    assert actor.user is not None, "terminals are opened by people"
    check_size(cols, rows)
    if term not in TERM_TYPES:
        raise ApplicationError(f"One of {', '.join(sorted(TERM_TYPES))}.", field="term")
    if host.presented_key:
        raise ApplicationError(
            "The host key changed; someone with terminal:manage must re-trust it.", field="host"
        )
    SshHost.unscoped.select_for_update().filter(pk=host.pk).first()  # one opener at a time
    open_rows = TerminalSession.unscoped.filter(state__in=OPEN_STATES)
    if open_rows.filter(host=host).count() >= settings.TERMINAL_PER_HOST:
        raise ApplicationError(
            f"{host.name} already has {settings.TERMINAL_PER_HOST} open sessions.", field="host"
        )
    if open_rows.filter(owner=actor.user).count() >= settings.TERMINAL_PER_USER:
        raise ApplicationError(
            f"You already have {settings.TERMINAL_PER_USER} open sessions.", field="host"
        )
    return TerminalSession.unscoped.create(
        org_id=host.org_id,
        site_id=host.site_id,
        host=host,
        owner=actor.user,
        cols=cols,
        rows=rows,
        term=term,
    )


def may_attach(user: User, session: TerminalSession) -> bool:
    """Only the owner, and only while they hold terminal:open at the host's site."""
    return session.owner_id == user.pk and has_perm(
        user, "terminal:open", session.org_id, session.site_id
    )


def session_claim(session_id: int, replica: str) -> str | None:
    """Pin a starting session to this process: its replica, or None when it is closed."""
    with transaction.atomic():
        row = TerminalSession.unscoped.select_for_update().filter(pk=session_id).first()
        if row is None or row.state == SessionState.CLOSED:
            return None
        if not row.replica:
            row.replica = replica
            row.save(update_fields=["replica"])
        return row.replica


def session_mark(session_id: int, state: str) -> None:
    TerminalSession.unscoped.filter(pk=session_id).exclude(state=SessionState.CLOSED).update(
        state=state
    )


@transaction.atomic
def session_end(session_id: int, *, reason: str, bytes_in: int, bytes_out: int) -> None:
    """The session's one activity event: who, host, start, end, bytes."""
    row = TerminalSession.unscoped.select_for_update().select_related("host", "owner")
    session = row.filter(pk=session_id).first()
    if session is None or session.state == SessionState.CLOSED:
        return
    session.state = SessionState.CLOSED
    session.ended_at = timezone.now()
    session.end_reason = reason[:40]
    session.bytes_in, session.bytes_out = bytes_in, bytes_out
    session.save()
    activity_record(
        actor=Actor.for_user(session.owner),
        verb="terminal.session",
        org=session.org_id,
        site=session.site_id,
        target=session.host,
        details={
            "session": session.pk,
            "started_at": session.started_at.isoformat(),
            "ended_at": session.ended_at.isoformat(),
            "reason": session.end_reason,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        },
    )


@records_refusals("terminal.close")
def session_close_request(*, actor: Actor, session: TerminalSession) -> None:
    """The owner (or terminal:manage) ends a session; the owning process sees the row."""
    if actor.user is None or session.owner_id != actor.user.pk:
        authorize_on(actor, "terminal:manage", session)
    from terminals import manager

    if not manager.close_local(session.pk, "closed by user"):
        session_end(session.pk, reason="closed by user", bytes_in=0, bytes_out=0)
