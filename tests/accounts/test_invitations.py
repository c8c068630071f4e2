"""Invitations: nothing is granted before the addressee accepts; no cross-org takeover."""

from __future__ import annotations

import re

from django.core import mail

from accounts.models import ActivityEvent, Invitation, Membership, User
from tests.accounts.conftest import browser, csrf_token, sign_in
from tests.accounts.support import NEW_PASSWORD, SAME_SHAPE, accept_new, invite, link_path
from tests.conftest import PASSWORD, OrgWorld, api_client_for, make_user


def test_inviting_a_new_address_creates_nothing_until_accepted(org_a: OrgWorld) -> None:
    response = invite(api_client_for(org_a.users["admin"]), org_a, "newbie@alpha.example")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SAME_SHAPE and body["state"] == "pending" and body["role"] == "viewer"
    assert response["Cache-Control"] == "no-store"
    assert not User.objects.filter(email="newbie@alpha.example").exists()
    assert len(mail.outbox) == 1 and body["accept_url"] in mail.outbox[0].body

    visitor = browser("10.7.0.1")
    done = accept_new(visitor, link_path(body["accept_url"]))
    assert done.status_code == 302 and done["Location"] == "/"
    newbie = User.objects.get(email="newbie@alpha.example")
    assert newbie.check_password(NEW_PASSWORD) and newbie.full_name == "New Person"
    assert Membership.unscoped.get(user=newbie, org=org_a.org).role.slug == "viewer"
    # signed in right away
    assert visitor.get("/").status_code == 200
    # the link is spent
    replay = browser("10.7.0.2")
    assert replay.get(link_path(body["accept_url"])).status_code == 404


def test_weak_password_on_the_invitation_page_is_refused(org_a: OrgWorld) -> None:
    body = invite(api_client_for(org_a.users["owner"]), org_a, "weak@alpha.example").json()
    response = accept_new(browser("10.7.1.1"), link_path(body["accept_url"]), "12345678")
    assert response.status_code == 200
    assert not User.objects.filter(email="weak@alpha.example").exists()


def test_existing_account_accepts_when_signed_in(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person = org_a.users["viewer"]
    body = invite(api_client_for(org_b.users["owner"]), org_b, person.email, "operator").json()
    mine = api_client_for(person).get("/api/v1/my-invitations/").json()
    assert [i["id"] for i in mine["results"]] == [body["id"]]
    assert mine["results"][0]["org"]["slug"] == org_b.org.slug

    client = browser("10.7.3.1")
    assert sign_in(client, person.email, PASSWORD).status_code == 302
    path = link_path(body["accept_url"])
    page = client.get(path)
    assert page.status_code == 200 and b"Accept and join" in page.content
    response = client.post(
        path, {"answer": "accept", "csrfmiddlewaretoken": csrf_token(client, path)}
    )
    assert response.status_code == 302
    assert Membership.unscoped.get(user=person, org=org_b.org).role.slug == "operator"
    assert Invitation.unscoped.get(pk=body["id"]).status == "accepted"


def test_decline_through_the_api(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person = org_a.users["viewer"]
    body = invite(api_client_for(org_b.users["owner"]), org_b, person.email).json()
    stranger = api_client_for(org_a.users["owner"])
    assert stranger.post(f"/api/v1/my-invitations/{body['id']}/decline/").status_code == 404
    assert (
        api_client_for(person).post(f"/api/v1/my-invitations/{body['id']}/decline/").status_code
        == 204
    )
    assert not Membership.unscoped.filter(user=person, org=org_b.org).exists()
    assert (
        api_client_for(person).post(f"/api/v1/my-invitations/{body['id']}/accept/").status_code
        == 404
    )


def test_resend_mints_a_new_link_and_kills_the_old(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    first = invite(admin, org_a, "late@alpha.example").json()
    again = admin.post(f"/api/v1/invitations/{first['id']}/resend/")
    assert again.status_code == 200 and again.json()["accept_url"] != first["accept_url"]
    assert len(mail.outbox) == 2
    assert browser("10.7.4.1").get(link_path(first["accept_url"])).status_code == 404
    assert browser("10.7.4.2").get(link_path(again.json()["accept_url"])).status_code == 200


def test_revoked_invitation_link_is_dead(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    body = invite(admin, org_a, "gone@alpha.example").json()
    assert admin.delete(f"/api/v1/invitations/{body['id']}/").status_code == 204
    assert browser("10.7.5.1").get(link_path(body["accept_url"])).status_code == 404


def test_memberships_post_is_the_same_invitation(org_a: OrgWorld) -> None:
    response = invite(
        api_client_for(org_a.users["owner"]),
        org_a,
        "compat@alpha.example",
        path="/api/v1/memberships/",
    )
    assert response.status_code == 201 and set(response.json()) == SAME_SHAPE


def test_invitations_are_org_scoped(org_a: OrgWorld, org_b: OrgWorld) -> None:
    body = invite(api_client_for(org_a.users["owner"]), org_a, "secret-hire@alpha.example").json()
    outsider = api_client_for(org_b.users["owner"])
    assert outsider.get(f"/api/v1/invitations/{body['id']}/").status_code == 404
    assert outsider.post(f"/api/v1/invitations/{body['id']}/resend/").status_code == 404
    assert outsider.delete(f"/api/v1/invitations/{body['id']}/").status_code == 404
    listed = outsider.get("/api/v1/invitations/").json()
    assert listed["count"] == 0
    assert (
        api_client_for(org_a.users["viewer"])
        .post(f"/api/v1/invitations/{body['id']}/resend/")
        .status_code
        == 403
    )


def test_refused_invite_is_logged_as_denied(org_a: OrgWorld) -> None:
    response = invite(api_client_for(org_a.users["operator"]), org_a, "x@alpha.example")
    assert response.status_code == 403
    event = ActivityEvent.unscoped.get(verb="member.invite")
    assert event.result == "denied" and event.org_id == org_a.org.pk


def test_users_page_invites_and_lists_pending(org_a: OrgWorld) -> None:
    client = browser("10.7.6.1")
    assert sign_in(client, org_a.users["owner"].email, PASSWORD).status_code == 302
    token = csrf_token(client, "/users/")
    page = client.post(
        "/users/invite/",
        {
            "email": "page@alpha.example",
            "role": org_a.org.pk and _viewer_pk(),
            "csrfmiddlewaretoken": token,
        },
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "page@alpha.example" in text and "Pending invitations" in text
    match = re.search(r'value="(http://testserver/invitations/accept/[^"]+)"', text)
    assert match is not None
    pending = Invitation.unscoped.get(email="page@alpha.example")
    resent = client.post(f"/users/invitations/{pending.pk}/resend/", {"csrfmiddlewaretoken": token})
    assert resent.status_code == 200 and match.group(1) not in resent.content.decode()


def _viewer_pk() -> int:
    from accounts.models import Role

    return Role.unscoped.get(slug="viewer", org=None).pk


def test_my_invitations_page_accepts(org_a: OrgWorld, org_b: OrgWorld) -> None:
    person = make_user("floater@nowhere.example")
    invite(api_client_for(org_b.users["owner"]), org_b, person.email)
    client = browser("10.7.7.1")
    assert sign_in(client, person.email, PASSWORD).status_code == 302
    home = client.get("/")
    assert b"Invitations for you" in home.content
    pending = Invitation.unscoped.get(email=person.email)
    token = csrf_token(client, "/invitations/")
    client.post(
        f"/invitations/{pending.pk}/answer/", {"answer": "accept", "csrfmiddlewaretoken": token}
    )
    assert Membership.unscoped.filter(user=person, org=org_b.org).exists()
