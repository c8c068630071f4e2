"""Session recordings (asciinema v2 files under ``DATA_DIR/recordings``), the org's terminal
policy that decides them, and the retention that prunes them."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Organization
from accounts.services.activity import activity_record, records_refusals
from terminals.models import Recording, SessionState, TerminalPolicy, TerminalSession

RETENTION_MAX_DAYS = 3650


def recordings_dir() -> Path:
    return Path(settings.DATA_DIR) / "recordings"


def recording_file(recording: Recording) -> Path:
    """The file of ``recording``; its stored path is relative and checked to stay inside."""
    base = recordings_dir().resolve()
    path = (base / recording.path).resolve()
    if base not in path.parents:
        raise ApplicationError("The recording's file is outside the recordings directory.")
    return path


def policy_for(org_id: int) -> TerminalPolicy:
    """The org's policy (the defaults until someone changes it: record output, not input,
    keep 30 days)."""
    policy = TerminalPolicy.objects.filter(org_id=org_id).first()
    return policy if policy is not None else TerminalPolicy(org_id=org_id)


@records_refusals("terminal.policy")
@transaction.atomic
def policy_update(
    *,
    actor: Actor,
    org: Organization,
    record_sessions: bool | None = None,
    record_input: bool | None = None,
    retention_days: int | None = None,
) -> TerminalPolicy:
    authorize(actor, "terminal:manage", org.pk)
    if retention_days is not None and not 1 <= retention_days <= RETENTION_MAX_DAYS:
        raise ApplicationError(f"Between 1 and {RETENTION_MAX_DAYS} days.", field="retention_days")
    policy, _ = TerminalPolicy.objects.select_for_update().get_or_create(org=org)
    changes: dict[str, list[object]] = {}
    values = {
        "record_sessions": record_sessions,
        "record_input": record_input,
        "retention_days": retention_days,
    }
    for name, value in values.items():
        if value is not None and value != getattr(policy, name):
            changes[name] = [getattr(policy, name), value]
            setattr(policy, name, value)
    if changes:
        policy.updated_at = timezone.now()
        policy.save()
        activity_record(
            actor=actor, verb="terminal.policy", org=org, target=org, details={"changes": changes}
        )
    return policy


@dataclass(frozen=True)
class RecordingPlan:
    id: int
    path: Path
    with_input: bool
    title: str


@transaction.atomic
def recording_start(session_id: int) -> RecordingPlan | None:
    """The recording a starting session writes, or None when its org doesn't record."""
    session = TerminalSession.unscoped.select_related("host").get(pk=session_id)
    policy = policy_for(session.org_id)
    if not policy.record_sessions:
        return None
    relative = f"{session.org_id}/{session.started_at:%Y/%m}/session-{session.pk}.cast"
    recording, _ = Recording.unscoped.get_or_create(
        session=session,
        defaults={
            "org_id": session.org_id,
            "site_id": session.site_id,
            "path": relative,
            "with_input": policy.record_input,
        },
    )
    title = f"{session.host.name} ({session.host.username}@{session.host.address})"
    return RecordingPlan(recording.pk, recordings_dir() / relative, recording.with_input, title)


@dataclass(frozen=True)
class RecordingFigures:
    """A recording as the list and the player show it: a finished one's stored size and
    length; one still being written, the file's size so far and the time since it started;
    one cut short (its process ended without finishing it), the file's size and last write."""

    recording: Recording
    size: int
    duration: float
    live: bool
    """Still being written: the figures are so far."""
    cut_short: bool


def recording_figures(recording: Recording, now: dt.datetime | None = None) -> RecordingFigures:
    """The figures of ``recording``: its row's once finished, else read from its file (the
    row's size and duration are written when the session ends)."""
    if recording.ended_at is not None:
        return RecordingFigures(recording, recording.size, recording.duration, False, False)
    now = now or timezone.now()
    size, written = 0, None
    with contextlib.suppress(OSError, ApplicationError):
        stat = recording_file(recording).stat()
        size, written = stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
    if recording.session.state == SessionState.CLOSED:
        end = written or recording.started_at
        length = max(0.0, (end - recording.started_at).total_seconds())
        return RecordingFigures(recording, size, length, False, True)
    length = max(0.0, (now - recording.started_at).total_seconds())
    return RecordingFigures(recording, size, length, True, False)


def recording_finish(recording_id: int, *, size: int, duration: float) -> None:
    Recording.unscoped.filter(pk=recording_id).update(
        size=size, duration=duration, ended_at=timezone.now()
    )


def recordings_prune(now: dt.datetime | None = None) -> int:
    """Delete recordings (rows and files) older than their org's retention; the count."""
    now = now or timezone.now()
    default_days = TerminalPolicy._meta.get_field("retention_days").get_default()
    days = dict(TerminalPolicy.objects.values_list("org_id", "retention_days"))
    removed = 0
    for org_id in Recording.unscoped.values_list("org_id", flat=True).distinct():
        cutoff = now - dt.timedelta(days=days.get(org_id, default_days))
        # a recording cut short (its process restarted) has no end: its start counts
        orphaned = Q(ended_at__isnull=True, session__state=SessionState.CLOSED)
        old = list(
            Recording.unscoped.filter(org_id=org_id).filter(
                Q(ended_at__lt=cutoff) | (orphaned & Q(started_at__lt=cutoff))
            )
        )
        for recording in old:
            # a path that points outside is never deleted; the row goes anyway
            with contextlib.suppress(ApplicationError):
                recording_file(recording).unlink(missing_ok=True)
        removed += Recording.unscoped.filter(pk__in=[r.pk for r in old]).delete()[0]
    return removed
