"""Deleting a site that miners, nodes or SSH hosts still use: a 400 naming them, nothing deleted
(it was a 500 from the ``ProtectedError`` of ``Miner.site``/``SshHost.site``)."""

from __future__ import annotations

from accounts.models import ActivityEvent, Site
from fleet.models import Miner
from terminals.models import SshHost
from tests.accounts.pages.support import HTMX, html, signed_in
from tests.conftest import OrgWorld, api_client_for


def _fill(world: OrgWorld) -> Site:
    site = world.sites[0]
    for i in range(3):
        Miner.unscoped.create(
            org=world.org,
            site=site,
            identifier=f"serial:in-use-{i}",
            name=f"rig-{i}",
            host=f"10.9.0.{i + 1}",
            port=80,
            driver="antminer",
        )
    SshHost.unscoped.create(
        org=world.org,
        site=site,
        name="jump",
        address="10.9.1.1",
        username="root",
        auth_method="password",
    )
    return site


MESSAGE = "3 miners, 1 SSH host still use this site: move or delete them first."


def test_the_api_refuses_with_a_400_naming_what_uses_the_site(org_a: OrgWorld) -> None:
    site = _fill(org_a)
    response = api_client_for(org_a.users["owner"]).delete(f"/api/v1/sites/{site.pk}/")
    assert response.status_code == 400, response.content
    assert response.json()["non_field_errors"] == [MESSAGE]
    assert Site.unscoped.filter(pk=site.pk).exists()
    assert Miner.unscoped.filter(site=site).count() == 3
    assert SshHost.unscoped.filter(site=site).count() == 1
    events = ActivityEvent.unscoped.filter(org=org_a.org, verb="site.delete")
    # the success record rolled back; the refusal is what is recorded
    assert list(events.values_list("result", flat=True)) == ["failed"]


def test_the_page_shows_the_refusal_on_the_row(org_a: OrgWorld) -> None:
    site = _fill(org_a)
    client = signed_in(org_a.users["owner"])
    response = client.post(f"/sites/{site.pk}/delete/", **HTMX)
    assert response.status_code == 200
    body = html(response)
    assert 'class="row-error"' in body and MESSAGE in body
    assert Site.unscoped.filter(pk=site.pk).exists()
    plain = client.post(f"/sites/{site.pk}/delete/")
    assert plain.status_code == 200 and MESSAGE in html(plain)
    assert Site.unscoped.filter(pk=site.pk).exists()


def test_one_row_reads_in_the_singular_and_an_empty_site_still_deletes(org_a: OrgWorld) -> None:
    site = org_a.sites[1]
    Miner.unscoped.create(
        org=org_a.org,
        site=site,
        identifier="serial:lonely",
        name="lonely",
        host="10.9.2.1",
        port=80,
        driver="antminer",
    )
    client = api_client_for(org_a.users["owner"])
    response = client.delete(f"/api/v1/sites/{site.pk}/")
    assert response.status_code == 400
    assert response.json()["non_field_errors"] == [
        "1 miner still uses this site: move or delete it first."
    ]
    Miner.unscoped.filter(site=site).delete()
    assert client.delete(f"/api/v1/sites/{site.pk}/").status_code == 204
    assert not Site.unscoped.filter(pk=site.pk).exists()
