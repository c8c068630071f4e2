"""Scheduled rediscovery: a site's saved ranges, rescanned every ``interval_minutes`` by the
beat's ``discovery.housekeeping``. Saving checks the ranges with the same guardrails as a run
(a refusal names the target), so a schedule never fails for a reason it could have been told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError, Refusal
from accounts.models import Site
from accounts.services.activity import activity_record, records_refusals
from discovery import limits, services, targets
from discovery.models import DiscoveryRun, RunStatus, SavedRange
from fleet.models import FleetNode, NodeStatus


@records_refusals("discovery.schedule")
@transaction.atomic
def saved_range_create(
    *,
    actor: Actor,
    site: Site,
    name: str,
    target_list: Sequence[str],
    ports: Sequence[int] | None = None,
    node: FleetNode | None = None,
    interval_minutes: int = 15,
) -> SavedRange:
    authorize(actor, "discovery:run", site.org_id, site.pk)
    if node is not None:
        authorize(actor, "fleetnode:manage", node.org_id, node.site_id)
        if node.org_id != site.org_id:
            raise ApplicationError("The node belongs to another organization.", field="node")
    if not limits.MIN_INTERVAL_MINUTES <= interval_minutes <= limits.MAX_INTERVAL_MINUTES:
        raise ApplicationError(
            f"Every {limits.MIN_INTERVAL_MINUTES} to {limits.MAX_INTERVAL_MINUTES} minutes.",
            field="interval_minutes",
        )
    clean_name = name.strip()
    if not clean_name or len(clean_name) > limits.NAME_CHARS:
        raise ApplicationError(f"1 to {limits.NAME_CHARS} characters.", field="name")
    try:
        scope = targets.expand(
            list(target_list),
            list(ports) if ports else None,
            default_ports=services.default_ports(),
            allowed=settings.DISCOVERY_ALLOWED_NETWORKS,
            via_node=node is not None,
        )
    except targets.TargetRefused as exc:
        raise ApplicationError(str(exc), field=exc.field) from exc
    saved = SavedRange.unscoped.create(
        org_id=site.org_id,
        site=site,
        node=node,
        name=clean_name,
        targets=[t.strip() for t in target_list],
        ports=list(scope.ports) if ports else [],
        interval_minutes=interval_minutes,
        created_by=actor.user,
    )
    activity_record(
        actor=actor,
        verb="discovery.schedule",
        org=site.org_id,
        site=site,
        target=saved,
        details={"targets": saved.targets[:20], "every_minutes": interval_minutes},
    )
    return saved


@records_refusals("discovery.unschedule")
@transaction.atomic
def saved_range_delete(*, actor: Actor, saved: SavedRange) -> None:
    authorize_on(actor, "discovery:run", saved)
    activity_record(
        actor=actor, verb="discovery.unschedule", org=saved.org_id, site=saved.site_id, target=saved
    )
    saved.delete()


def rescans_due(*, now: dt.datetime | None = None) -> int:
    """Start a run for every saved range that is due and whose last run has finished (one
    beat replica claims each row: ``skip_locked``)."""
    now = now or timezone.now()
    started = 0
    with transaction.atomic():
        due = list(
            SavedRange.unscoped.select_for_update(skip_locked=True, of=("self",))
            .filter(enabled=True, next_run_at__lte=now)
            .select_related("site", "node")[:100]
        )
        for saved in due:
            saved.next_run_at = now + dt.timedelta(minutes=saved.interval_minutes)
            busy = (
                saved.last_run_id is not None
                and DiscoveryRun.unscoped.filter(pk=saved.last_run_id)
                .exclude(status=RunStatus.DONE)
                .exists()
            )
            if busy or (saved.node is not None and saved.node.status != NodeStatus.CONFIRMED):
                saved.save(update_fields=["next_run_at"])
                continue
            try:
                run = services.run_create(
                    actor=Actor.system(f"rediscovery '{saved.name}'"[:200]),
                    site=saved.site,
                    target_list=saved.targets,
                    ports=saved.ports or None,
                    node=saved.node,
                    scheduled=True,
                )
            except Refusal as exc:  # the allowlist changed since it was saved: say so, stop
                saved.enabled = False
                saved.save(update_fields=["next_run_at", "enabled"])
                activity_record(
                    actor=Actor.system("rediscovery"),
                    verb="discovery.unschedule",
                    org=saved.org_id,
                    site=saved.site_id,
                    target=saved,
                    result="failed",
                    details={"reason": exc.message},
                )
                continue
            saved.last_run = run
            saved.save(update_fields=["next_run_at", "last_run"])
            started += 1
    return started
