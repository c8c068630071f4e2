from __future__ import annotations

from typing import Any

from django.db import models

from accounts.actor import Actor
from accounts.models import ActivityEvent, ActivityResult, Membership, Organization, Site, User

_MAX_LABEL = 200


def activity_record(
    *,
    actor: Actor,
    verb: str,
    org: Organization | int | None = None,
    site: Site | int | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    target_label: str = "",
    result: str = ActivityResult.OK,
    details: dict[str, Any] | None = None,
) -> ActivityEvent:
    """The one way to write the activity log; callers pass the model they changed as ``target``."""
    if target is not None:
        target_type = target_type or target._meta.model_name or ""
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)
    return ActivityEvent.objects.create(
        actor_type=actor.type,
        actor_user=actor.user,
        actor_label=actor.label[:_MAX_LABEL],
        org_id=org.pk if isinstance(org, Organization) else org,
        site_id=site.pk if isinstance(site, Site) else site,
        verb=verb,
        target_type=target_type,
        target_id=str(target_id),
        target_label=target_label[:_MAX_LABEL],
        result=result,
        details=details or {},
        ip=actor.ip,
    )


def activity_record_personal(
    *,
    actor: Actor,
    verb: str,
    user: User,
    target: models.Model,
    target_label: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """A change to someone's own things (tokens, sessions): one event per org they belong to,
    so every org that person can act in sees it in its activity log."""
    org_ids = list(Membership.objects.filter(user_id=user.pk).values_list("org_id", flat=True))
    for org_id in org_ids or [None]:
        activity_record(
            actor=actor,
            verb=verb,
            org=org_id,
            target=target,
            target_label=target_label,
            details=details,
        )
