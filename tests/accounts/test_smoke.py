from tests.conftest import OrgWorld, api_client_for


def test_sites_are_scoped(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = api_client_for(org_a.users["viewer"])
    response = client.get("/api/v1/sites/")
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {s.pk for s in org_a.sites}
    other = org_b.sites[0].pk
    assert client.get(f"/api/v1/sites/{other}/").status_code == 404
    assert (
        client.patch(
            f"/api/v1/sites/{org_a.sites[0].pk}/", {"name": "x"}, format="json"
        ).status_code
        == 403
    )
    owner = api_client_for(org_a.users["owner"])
    assert (
        owner.patch(
            f"/api/v1/sites/{org_a.sites[0].pk}/", {"name": "Renamed"}, format="json"
        ).status_code
        == 200
    )
