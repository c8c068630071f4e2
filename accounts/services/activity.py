from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.db import models

from accounts.actor import Actor
from accounts.errors import ApplicationError, Forbidden
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
    return ActivityEvent.unscoped.create(
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
    org_ids: list[int | None] = list(
        Membership.unscoped.filter(user_id=user.pk).values_list("org_id", flat=True)
    )
    for org_id in org_ids or [None]:
        activity_record(
            actor=actor,
            verb=verb,
            org=org_id,
            target=target,
            target_label=target_label,
            details=details,
        )


P = ParamSpec("P")
R = TypeVar("R")


def records_refusals(verb: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Put outside a service's transaction: a refusal — a missing permission (``denied``) or a
    rule the service enforces, such as the last owner (``failed``) — is written to the activity
    log after the rollback, then re-raised for the caller to show."""

    def wrap(service: Callable[P, R]) -> Callable[P, R]:
        @wraps(service)
        def audited(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return service(*args, **kwargs)
            except (Forbidden, ApplicationError) as exc:
                actor = kwargs.get("actor")
                if isinstance(actor, Actor):
                    _record_refusal(actor, verb, kwargs, exc)
                raise

        return audited

    return wrap


def _record_refusal(actor: Actor, verb: str, kwargs: dict[str, Any], exc: Exception) -> None:
    models_given = [v for k, v in kwargs.items() if k != "actor" and isinstance(v, models.Model)]
    target = next((m for m in models_given if not isinstance(m, Organization)), None) or next(
        iter(models_given), None
    )
    org = kwargs.get("org")
    activity_record_refusal(
        actor=actor,
        verb=verb,
        target=target,
        org=org if isinstance(org, Organization) else None,
        exc=exc,
    )


def activity_record_refusal(
    *,
    actor: Actor,
    verb: str,
    target: models.Model | None,
    exc: Exception,
    org: Organization | None = None,
) -> None:
    """A refused write, in the log of the org it was aimed at (``denied`` for a missing
    permission, ``failed`` for a rule); nothing when no org can be told."""
    org_id: int | None = org.pk if org is not None else None
    site_id: int | None = None
    if isinstance(target, Organization):
        org_id = target.pk
    elif target is not None and hasattr(target, "scope_ids"):
        target_org, site_id = target.scope_ids()
        org_id = target_org if target_org is not None else org_id
    if org_id is None:
        return
    activity_record(
        actor=actor,
        verb=verb,
        org=org_id,
        site=site_id,
        target=target,
        result=ActivityResult.DENIED if isinstance(exc, Forbidden) else ActivityResult.FAILED,
        details={"reason": str(getattr(exc, "message", exc))},
    )
