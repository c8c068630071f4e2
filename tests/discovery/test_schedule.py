"""Scheduled rediscovery: saved per-site ranges, checked when saved, rescanned when due."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from accounts.actor import Actor
from discovery import schedule, services
from discovery.models import DiscoveryRun, Outcome, SavedRange
from tests.conftest import OrgWorld, api_client_for

URL = "/api/v1/discovery/schedules/"
pytestmark = pytest.mark.usefixtures("allow_loopback")


def save(world: OrgWorld, **extra: Any) -> Any:
    body = {"site": world.sites[0].pk, "name": "rack A", "targets": ["127.0.8.0/28"], **extra}
    return api_client_for(world.users["operator"]).post(URL, body, format="json")


def test_save_checks_the_ranges_like_a_run(org_a: OrgWorld) -> None:
    response = save(org_a, targets=["8.8.8.0/28"])
    assert response.status_code == 400 and "8.8.8.0/28" in response.content.decode()
    assert save(org_a, interval_minutes=1).status_code == 400
    response = save(org_a, interval_minutes=15, ports=[80])
    assert response.status_code == 201, response.content
    assert response.json()["interval_minutes"] == 15 and response.json()["ports"] == [80]


def test_due_ranges_are_rescanned_once_per_interval(org_a: OrgWorld) -> None:
    saved = schedule.saved_range_create(
        actor=Actor.for_user(org_a.users["operator"]),
        site=org_a.sites[0],
        name="rack A",
        target_list=["127.0.8.1-4"],
        interval_minutes=15,
    )
    now = timezone.now() + dt.timedelta(seconds=1)
    assert schedule.rescans_due(now=now) == 1
    run = DiscoveryRun.unscoped.get()
    assert run.scheduled and run.expanded_count == 4 and run.targets == ["127.0.8.1-4"]
    saved.refresh_from_db()
    assert saved.last_run_id == run.pk
    assert saved.next_run_at == now + dt.timedelta(minutes=15)
    assert schedule.rescans_due(now=now) == 0  # not due again yet
    later = now + dt.timedelta(minutes=16)
    assert schedule.rescans_due(now=later) == 0  # the last run hasn't finished: skipped
    services.run_finish(run.pk, Outcome.OK)
    assert schedule.rescans_due(now=later + dt.timedelta(minutes=16)) == 1


def test_a_range_no_longer_allowed_stops_its_schedule(org_a: OrgWorld, settings: Any) -> None:
    schedule.saved_range_create(
        actor=Actor.for_user(org_a.users["operator"]),
        site=org_a.sites[0],
        name="lab",
        target_list=["127.0.8.1"],
    )
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    assert schedule.rescans_due(now=timezone.now() + dt.timedelta(seconds=1)) == 0
    assert not SavedRange.unscoped.get().enabled and not DiscoveryRun.unscoped.exists()


def test_another_orgs_schedules_are_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    saved_id = save(org_a).json()["id"]
    outsider = api_client_for(org_b.users["owner"])
    assert outsider.get(f"{URL}{saved_id}/").status_code == 404
    assert outsider.delete(f"{URL}{saved_id}/").status_code == 404
    assert api_client_for(org_a.users["operator"]).delete(f"{URL}{saved_id}/").status_code == 204
    assert not SavedRange.unscoped.exists()
