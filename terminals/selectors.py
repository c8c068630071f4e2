"""Reads shared by the API and the pages: what a user may list."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from terminals.models import OPEN_STATES, Recording, SshHost, TerminalSession


def visible_hosts(user: Any, org_id: int) -> QuerySet[SshHost]:
    hosts: QuerySet[SshHost] = SshHost.objects.restrict(user, "terminal:open").filter(org_id=org_id)
    return hosts.select_related("site", "jump_host")


def own_sessions(queryset: QuerySet[TerminalSession], user: Any) -> QuerySet[TerminalSession]:
    """Sessions are their owner's alone."""
    return queryset.filter(owner=user)


def open_sessions(user: Any, org_id: int) -> QuerySet[TerminalSession]:
    rows = TerminalSession.objects.restrict(user, "terminal:open").filter(org_id=org_id)
    return (
        own_sessions(rows, user).filter(state__in=OPEN_STATES).select_related("host", "recording")
    )


def narrow_recordings(queryset: QuerySet[Recording], user: Any) -> QuerySet[Recording]:
    """Your own recordings, and all of those at sites where you hold terminal:manage."""
    managed = Recording.objects.restrict(user, "terminal:manage").values("pk")
    return queryset.filter(Q(session__owner=user) | Q(pk__in=managed))


def visible_recordings(user: Any, org_id: int) -> QuerySet[Recording]:
    rows = Recording.objects.restrict(user, "terminal:open").filter(org_id=org_id)
    return narrow_recordings(rows, user).select_related("session__host", "session__owner")
