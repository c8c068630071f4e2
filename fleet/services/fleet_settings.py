"""Org-wide fleet settings: the poll interval. No row means the deployment's default
(``FLEET_POLL_INTERVAL``); a change takes effect at each miner's next poll."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Organization
from accounts.services.activity import activity_record, records_refusals
from fleet.models import FleetSettings, Miner
from fleet.models.settings import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN


def default_poll_interval() -> int:
    return int(settings.FLEET_POLL_INTERVAL)


def fleet_settings_for(org: Organization | int) -> FleetSettings:
    """The org's settings, or an unsaved row with the defaults."""
    org_id = org if isinstance(org, int) else org.pk
    found = FleetSettings.unscoped.filter(org_id=org_id).first()
    return found or FleetSettings(org_id=org_id, poll_interval_s=default_poll_interval())


def poll_intervals(org_ids: Iterable[int]) -> dict[int, dt.timedelta]:
    """The effective poll interval of each org (one query)."""
    wanted = set(org_ids)
    chosen = dict(
        FleetSettings.unscoped.filter(org_id__in=wanted).values_list("org_id", "poll_interval_s")
    )
    default = default_poll_interval()
    return {org_id: dt.timedelta(seconds=chosen.get(org_id, default)) for org_id in wanted}


@records_refusals("fleet_settings.update")
@transaction.atomic
def fleet_settings_update(
    *, actor: Actor, org: Organization, poll_interval_s: int
) -> FleetSettings:
    authorize(actor, "org:manage", org.pk)
    if isinstance(poll_interval_s, bool) or not isinstance(poll_interval_s, int):
        raise ApplicationError(
            "The poll interval is a whole number of seconds.", field="poll_interval_s"
        )
    if not POLL_INTERVAL_MIN <= poll_interval_s <= POLL_INTERVAL_MAX:
        raise ApplicationError(
            f"The poll interval must be between {POLL_INTERVAL_MIN} and {POLL_INTERVAL_MAX} s.",
            field="poll_interval_s",
        )
    current = FleetSettings.unscoped.select_for_update().filter(org=org).first()
    before = current.poll_interval_s if current else default_poll_interval()
    row = current or FleetSettings(org=org)
    row.poll_interval_s, row.updated_at = poll_interval_s, timezone.now()
    row.save()
    if poll_interval_s < before:
        # a shorter interval shouldn't wait out the longer one: the next poll comes no later
        # than one new interval from now
        soon = timezone.now() + dt.timedelta(seconds=poll_interval_s)
        Miner.unscoped.filter(org=org, next_poll_at__gt=soon).update(next_poll_at=soon)
    activity_record(
        actor=actor,
        verb="fleet_settings.update",
        org=org,
        target=row,
        details={"poll_interval_s": {"from": before, "to": poll_interval_s}},
    )
    return row
