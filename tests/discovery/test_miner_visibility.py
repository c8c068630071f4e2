"""A device found at one site can be paired to a miner of another site (one identity per org):
its ``miner`` is shown only to a caller who may read that miner — else null, in the API and
on the page — with no query per row."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Role, SiteRoleAssignment, User
from discovery.models import DiscoveredDevice, DiscoveryRun, RunStatus
from fleet.models import Miner
from tests.conftest import OrgWorld, api_client_for, make_user

DEVICES = "/api/v1/discovery/devices/"


def _miner(world: OrgWorld, site: int, name: str, host: str) -> Miner:
    return Miner.unscoped.create(
        org=world.org,
        site=world.sites[site],
        identifier=f"serial:{name}",
        name=name,
        host=host,
        port=80,
        driver="antminer",
    )


def _run_at_a2(world: OrgWorld) -> tuple[DiscoveryRun, Miner, Miner]:
    """A run at site A2 that found the rig paired at A1 (it moved) and one paired at A2."""
    elsewhere = _miner(world, 0, "rig-at-a1", "10.7.0.1")
    here = _miner(world, 1, "rig-at-a2", "10.7.0.2")
    run = DiscoveryRun.unscoped.create(
        org=world.org, site=world.sites[1], actor_label="test", status=RunStatus.DONE
    )
    for miner, host in [(elsewhere, "10.7.1.1"), (here, "10.7.0.2")]:
        DiscoveredDevice.unscoped.create(
            org=world.org,
            site=world.sites[1],
            run=run,
            identifier=f"serial:{host}",
            host=host,
            port=80,
            driver="antminer",
            miner=miner,
        )
    return run, elsewhere, here


def _a2_operator(world: OrgWorld) -> User:
    """Nothing in the org, operator at site A2 only."""
    user = make_user("a2-only@alpha.example")
    nothing = Role.unscoped.create(org=world.org, slug="nothing", name="Nothing", permissions=[])
    Membership.unscoped.create(user=user, org=world.org, role=nothing)
    operator = Role.unscoped.get(slug="operator", org__isnull=True)
    SiteRoleAssignment.unscoped.create(user=user, site=world.sites[1], role=operator)
    return user


def _miners_by_host(client: object, run: DiscoveryRun) -> dict[str, int | None]:
    response = client.get(f"{DEVICES}?run={run.pk}")  # type: ignore[attr-defined]
    assert response.status_code == 200
    return {row["host"]: row["miner"] for row in response.json()["results"]}


def test_the_api_hides_the_id_of_a_miner_at_a_site_the_caller_cant_read(org_a: OrgWorld) -> None:
    run, elsewhere, here = _run_at_a2(org_a)
    scoped = api_client_for(_a2_operator(org_a))
    assert _miners_by_host(scoped, run) == {"10.7.1.1": None, "10.7.0.2": here.pk}
    moved = DiscoveredDevice.unscoped.get(host="10.7.1.1")
    detail = scoped.get(f"{DEVICES}{moved.pk}/")
    assert detail.status_code == 200 and detail.json()["miner"] is None
    # the org's owner reads both miners
    owner = api_client_for(org_a.users["owner"])
    assert _miners_by_host(owner, run) == {"10.7.1.1": elsewhere.pk, "10.7.0.2": here.pk}
    assert owner.get(f"{DEVICES}{moved.pk}/").json()["miner"] == elsewhere.pk


def test_the_api_reads_the_visibility_without_a_query_per_row(org_a: OrgWorld) -> None:
    run, _elsewhere, _here = _run_at_a2(org_a)
    client = api_client_for(_a2_operator(org_a))
    _miners_by_host(client, run)  # warm up (grants, sessions)
    with CaptureQueriesContext(connection) as few:
        _miners_by_host(client, run)
    more_run, _e, _h = _run_at_a2_again(org_a, 20)
    with CaptureQueriesContext(connection) as many:
        _miners_by_host(client, more_run)
    assert len(many) == len(few)


def _run_at_a2_again(world: OrgWorld, extra: int) -> tuple[DiscoveryRun, Miner, Miner]:
    elsewhere = _miner(world, 0, "rig-b-at-a1", "10.6.0.1")
    here = _miner(world, 1, "rig-b-at-a2", "10.6.0.2")
    run = DiscoveryRun.unscoped.create(
        org=world.org, site=world.sites[1], actor_label="test", status=RunStatus.DONE
    )
    for i in range(extra):
        DiscoveredDevice.unscoped.create(
            org=world.org,
            site=world.sites[1],
            run=run,
            identifier=f"serial:b-{i}",
            host=f"10.6.1.{i + 1}",
            port=80,
            driver="antminer",
            miner=elsewhere if i % 2 else here,
        )
    return run, elsewhere, here


def test_the_page_links_only_the_miners_the_caller_can_read(org_a: OrgWorld) -> None:
    run, elsewhere, here = _run_at_a2(org_a)
    client = Client()
    client.force_login(_a2_operator(org_a))
    page = client.get(f"/discovery/?run={run.pk}")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"/miners/{here.pk}/" in body and "rig-at-a2" in body
    assert f"/miners/{elsewhere.pk}/" not in body and "rig-at-a1" not in body
    assert "to a miner you can&#x27;t see" in body or "to a miner you can't see" in body
    owner = Client()
    owner.force_login(org_a.users["owner"])
    everything = owner.get(f"/discovery/?run={run.pk}").content.decode()
    assert f"/miners/{elsewhere.pk}/" in everything and "rig-at-a1" in everything


def test_live_updates_to_the_runs_site_carry_only_that_sites_miners(
    org_a: OrgWorld, monkeypatch: object, django_capture_on_commit_callbacks: object
) -> None:
    """The site group of the run reads that site's miners, not necessarily the others'."""
    from discovery import services

    run, _elsewhere, here = _run_at_a2(org_a)
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(  # type: ignore[attr-defined]
        services.live, "publish", lambda group, message: sent.append((group, message))
    )
    devices = list(DiscoveredDevice.unscoped.filter(run=run))
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        services.publish(run, devices)
    [(_group, message)] = sent
    rows = {row["host"]: row["miner"] for row in message["devices"]}  # type: ignore[index]
    assert rows == {"10.7.1.1": None, "10.7.0.2": here.pk}
    # the hidden one is still paired: the page never offers it for pairing again
    paired = {row["host"]: row["paired"] for row in message["devices"]}  # type: ignore[index]
    assert paired == {"10.7.1.1": True, "10.7.0.2": True}
