"""API tokens are bound to one org: they grant nothing elsewhere, and only that org's
``apikey:manage`` holders see or revoke them."""

from __future__ import annotations

from django.core.management import call_command

from accounts.actor import Actor
from accounts.models import ApiToken, Membership, Role
from accounts.services.tokens import api_token_create
from tests.accounts.support import token_client, two_org_person
from tests.conftest import OrgWorld, api_client_for


def test_token_grants_nothing_in_other_orgs(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person = org_a.users["operator"]
    Membership.unscoped.create(
        user=person, org=org_b.org, role=Role.unscoped.get(slug="admin", org=None)
    )
    issued = api_token_create(actor=Actor.for_user(person), user=person, org=org_a.org, name="a")
    client = token_client(issued.secret)
    orgs = {o["id"] for o in client.get("/api/v1/orgs/").json()["results"]}
    assert orgs == {org_a.org.pk}
    assert client.get(f"/api/v1/sites/{org_b.sites[0].pk}/").status_code == 404
    # admin in org B through the session, but the org A token can't invite there
    response = client.post(
        "/api/v1/invitations/",
        {"org": org_b.org.pk, "email": "x@bravo.example", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400 and "org" in response.json()


def test_superuser_token_is_bound_too(org_a: OrgWorld, org_b: OrgWorld) -> None:
    root = org_a.users["owner"]
    root.is_superuser = True
    root.save()
    issued = api_token_create(actor=Actor.for_user(root), user=root, org=org_a.org, name="root")
    client = token_client(issued.secret)
    assert client.get(f"/api/v1/sites/{org_b.sites[0].pk}/").status_code == 404


def test_token_create_needs_org_when_several(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person, _, _ = two_org_person(org_a, org_b)
    client = api_client_for(person)  # type: ignore[arg-type]
    response = client.post("/api/v1/tokens/", {"name": "x"}, format="json")
    assert response.status_code == 400 and "org" in response.json()
    response = client.post("/api/v1/tokens/", {"name": "x", "org": org_b.org.pk}, format="json")
    assert response.status_code == 201 and response.json()["org"] == org_b.org.pk
    assert response["Cache-Control"] == "no-store"
    # one org: implied
    single = api_client_for(org_a.users["viewer"])
    response = single.post("/api/v1/tokens/", {"name": "y"}, format="json")
    assert response.status_code == 201 and response.json()["org"] == org_a.org.pk


def test_leaving_the_org_kills_its_tokens(org_a: OrgWorld) -> None:
    viewer = org_a.users["viewer"]
    issued = api_token_create(actor=Actor.for_user(viewer), user=viewer, name="v")
    assert token_client(issued.secret).get("/api/v1/me/").status_code == 200
    membership = Membership.unscoped.get(user=viewer, org=org_a.org)
    assert (
        api_client_for(org_a.users["owner"])
        .delete(f"/api/v1/memberships/{membership.pk}/")
        .status_code
        == 204
    )
    assert token_client(issued.secret).get("/api/v1/me/").status_code == 401


def test_create_api_token_command_takes_org(org_a: OrgWorld, org_b: OrgWorld, capsys) -> None:  # type: ignore[no-untyped-def]
    person, _, _ = two_org_person(org_a, org_b)
    call_command("create_api_token", "--email", person.email, "--org", org_b.org.slug)  # type: ignore[attr-defined]
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiToken.unscoped.get(prefix=secret.split("_")[1]).org == org_b.org
