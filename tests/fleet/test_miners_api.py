"""Adding miners by address through the real drivers, against simulated rigs on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import ActivityEvent
from fleet.models import Miner
from fleet.services.credentials import credentials_for
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.conftest import PASSWORD, ThreadedFleet

pytestmark = pytest.mark.usefixtures("loopback_allowed")


def add(client: Any, world: OrgWorld, host: str, **extra: Any) -> Any:
    return client.post(
        "/api/v1/miners/", {"site": world.sites[0].pk, "host": host, **extra}, format="json"
    )


def proto(rigs: ThreadedFleet, n: int = 0) -> dict[str, Any]:
    return [e for e in rigs.inventory if e["kind"] == "protoos"][n]


def test_add_a_protoos_rig_by_address(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    entry = proto(rigs)
    response = add(api_client_for(org_a.users["operator"]), org_a, entry["host"], password=PASSWORD)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["driver"] == "protoos" and body["serial"] == entry["serial"]
    assert (
        body["mac"] == entry["mac"].lower() and body["identifier"] == f"mac:{entry['mac'].lower()}"
    )
    assert body["site"] == org_a.sites[0].pk and body["managed_by"] == "cloud"
    assert "reboot" in body["capabilities"] and body["latest"] is None
    assert "password" not in body and PASSWORD not in response.content.decode()
    miner = Miner.unscoped.get(pk=body["id"])
    assert PASSWORD.encode() not in bytes(miner.secret or b"")
    assert credentials_for(miner).password == PASSWORD  # type: ignore[union-attr]
    event = ActivityEvent.unscoped.get(verb="miner.add")
    assert event.org_id == org_a.org.pk and event.site_id == org_a.sites[0].pk
    assert PASSWORD not in str(event.details)


def test_add_an_antminer(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    entry = next(e for e in rigs.inventory if e["kind"] == "antminer")
    response = add(api_client_for(org_a.users["owner"]), org_a, entry["host"], password=PASSWORD)
    assert response.status_code == 201, response.content
    assert response.json()["driver"] == "antminer"


def test_wrong_password_is_a_400_on_the_password(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    response = add(
        api_client_for(org_a.users["owner"]), org_a, proto(rigs, 1)["host"], password="nope-nope"
    )
    assert response.status_code == 400 and "password" in response.json()
    assert not Miner.unscoped.exists()


def test_nothing_there_is_a_400_on_the_host(org_a: OrgWorld) -> None:
    response = add(api_client_for(org_a.users["owner"]), org_a, "127.254.254.254", port=8099)
    assert response.status_code == 400 and "host" in response.json()
    assert "answered like a miner" in response.json()["host"][0]


@pytest.mark.parametrize("host", ["8.8.8.8", "169.254.169.254", "224.0.0.1", "0.0.0.0"])
def test_addresses_outside_the_allowed_networks_are_refused(
    org_a: OrgWorld, host: str, settings: Any
) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    response = add(api_client_for(org_a.users["owner"]), org_a, host)
    assert response.status_code == 400 and "host" in response.json(), response.content


def test_loopback_is_refused_unless_listed(org_a: OrgWorld, settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = []
    response = add(api_client_for(org_a.users["owner"]), org_a, "127.0.0.1")
    assert response.status_code == 400 and "loopback" in response.json()["host"][0]


def test_the_same_rig_twice_is_a_400(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    client = api_client_for(org_a.users["owner"])
    assert add(client, org_a, proto(rigs)["host"], password=PASSWORD).status_code == 201
    again = add(client, org_a, proto(rigs)["host"], password=PASSWORD)
    assert again.status_code == 400 and "already in the fleet" in again.json()["host"][0]


def test_miners_are_org_scoped(org_a: OrgWorld, org_b: OrgWorld, rigs: ThreadedFleet) -> None:
    body = add(
        api_client_for(org_a.users["owner"]), org_a, proto(rigs)["host"], password=PASSWORD
    ).json()
    outsider = api_client_for(org_b.users["owner"])
    assert outsider.get(f"/api/v1/miners/{body['id']}/").status_code == 404
    assert (
        outsider.patch(f"/api/v1/miners/{body['id']}/", {"name": "x"}, format="json").status_code
        == 404
    )
    assert outsider.delete(f"/api/v1/miners/{body['id']}/").status_code == 404
    assert outsider.get("/api/v1/miners/").json()["count"] == 0
    # org B can't add into org A's site
    response = outsider.post(
        "/api/v1/miners/",
        {"site": org_a.sites[0].pk, "host": proto(rigs, 1)["host"]},
        format="json",
    )
    assert response.status_code == 400 and "site" in response.json()


def test_rename_move_credentials_and_delete(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    owner = api_client_for(org_a.users["owner"])
    body = add(owner, org_a, proto(rigs)["host"], password=PASSWORD).json()
    url = f"/api/v1/miners/{body['id']}/"
    renamed = owner.patch(
        url, {"name": "A-01", "tags": ["row-a", "s21"], "rack": "A"}, format="json"
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "A-01"
    assert renamed.json()["tags"] == ["row-a", "s21"]
    moved = owner.patch(url, {"site": org_a.sites[1].pk}, format="json")
    assert moved.status_code == 200 and moved.json()["site"] == org_a.sites[1].pk
    creds = owner.patch(url, {"password": "new-rig-pass"}, format="json")
    assert creds.status_code == 200 and "new-rig-pass" not in creds.content.decode()
    miner = Miner.unscoped.get(pk=body["id"])
    assert miner.credential_version == 2
    assert credentials_for(miner).password == "new-rig-pass"  # type: ignore[union-attr]
    assert owner.delete(url).status_code == 204
    verbs = list(ActivityEvent.unscoped.filter(target_type="miner").values_list("verb", flat=True))
    assert sorted(verbs) == sorted(
        ["miner.add", "miner.update", "miner.move", "miner.credentials", "miner.delete"]
    )


def test_site_roles_decide_at_the_miners_site(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    """An operator narrowed to viewer at site 1 can't add there, but can at site 2."""
    from accounts.models import Role, SiteRoleAssignment

    operator = org_a.users["operator"]
    SiteRoleAssignment.unscoped.create(
        user=operator, site=org_a.sites[0], role=Role.unscoped.get(slug="viewer", org=None)
    )
    client = api_client_for(operator)
    refused = add(client, org_a, proto(rigs)["host"], password=PASSWORD)
    assert refused.status_code == 403
    allowed = client.post(
        "/api/v1/miners/",
        {"site": org_a.sites[1].pk, "host": proto(rigs)["host"], "password": PASSWORD},
        format="json",
    )
    assert allowed.status_code == 201, allowed.content


def test_list_filters_and_search(org_a: OrgWorld, rigs: ThreadedFleet) -> None:
    owner = api_client_for(org_a.users["owner"])
    for entry in rigs.inventory:
        assert add(owner, org_a, entry["host"], password=PASSWORD).status_code == 201
    listed = owner.get("/api/v1/miners/", {"driver": "protoos"}).json()
    assert listed["count"] == 2
    found = owner.get("/api/v1/miners/", {"search": proto(rigs)["serial"]}).json()
    assert [m["serial"] for m in found["results"]] == [proto(rigs)["serial"]]
    ordered = owner.get("/api/v1/miners/", {"ordering": "-host"}).json()["results"]
    assert [m["host"] for m in ordered] == sorted((m["host"] for m in ordered), reverse=True)
