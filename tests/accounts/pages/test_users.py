"""The users page: invitations, role changes, removal, site roles, other orgs, search, paging."""

from __future__ import annotations

import re

from accounts.models import Membership, SiteRoleAssignment, User
from tests.accounts.pages.support import HTMX, builtin, html, signed_in
from tests.conftest import OrgWorld, make_user


def test_invite_shows_the_invitation_link_once(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    response = client.post(
        "/users/invite/", {"email": "New.Person@x.example", "role": builtin("operator").pk}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "members-changed"
    body = html(response)
    assert "<html" not in body
    link = re.search(r'value="(http://testserver/invitations/accept/[^"]+)"', body)
    assert link, body
    assert not Membership.unscoped.filter(user__email="new.person@x.example").exists()
    page = html(client.get("/users/"))
    assert link.group(1) not in page
    assert "new.person@x.example" in page and "Pending invitations" in page


def test_invite_without_htmx_renders_the_page_with_the_link(org_a: OrgWorld) -> None:
    response = signed_in(org_a.users["admin"]).post(
        "/users/invite/", {"email": "plain@x.example", "role": builtin("viewer").pk}
    )
    assert response.status_code == 200
    assert "/invitations/accept/" in html(response)
    assert "<html" in html(response)


def test_invite_errors_are_form_errors(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    again = client.post(
        "/users/invite/", {"email": "viewer@alpha.example", "role": builtin("viewer").pk}, **HTMX
    )
    assert again.status_code == 200
    assert "already a member" in html(again)
    too_much = client.post(
        "/users/invite/", {"email": "boss@x.example", "role": builtin("owner").pk}, **HTMX
    )
    assert "You can&#x27;t grant the role" in html(too_much)
    bad = client.post(
        "/users/invite/", {"email": "not-an-email", "role": builtin("viewer").pk}, **HTMX
    )
    assert "Enter a valid email address" in html(bad)
    assert not User.objects.filter(email="boss@x.example").exists()


def test_change_role_returns_the_updated_row(org_a: OrgWorld) -> None:
    membership = Membership.unscoped.get(user=org_a.users["viewer"])
    operator = builtin("operator")
    response = signed_in(org_a.users["owner"]).post(
        f"/users/{membership.pk}/role/", {"role": operator.pk}, **HTMX
    )
    assert response.status_code == 200
    body = html(response)
    assert body.lstrip().startswith(f'<tr id="member-{membership.pk}"')
    assert f'<option value="{operator.pk}" selected>' in body
    assert 'hx-swap-oob="true"' in body and "is now Operator" in body
    membership.refresh_from_db()
    assert membership.role == operator


def test_last_owner_cannot_be_demoted_or_removed(org_a: OrgWorld) -> None:
    owner = Membership.unscoped.get(user=org_a.users["owner"])
    client = signed_in(org_a.users["owner"])
    demote = client.post(f"/users/{owner.pk}/role/", {"role": builtin("viewer").pk}, **HTMX)
    assert "at least one owner" in html(demote)
    remove = client.post(f"/users/{owner.pk}/remove/", **HTMX)
    assert "last owner" in html(remove)
    assert Membership.unscoped.filter(pk=owner.pk, role__slug="owner").exists()


def test_remove_member(org_a: OrgWorld) -> None:
    membership = Membership.unscoped.get(user=org_a.users["field_tech"])
    SiteRoleAssignment.unscoped.create(
        user=membership.user, site=org_a.sites[0], role=builtin("operator")
    )
    response = signed_in(org_a.users["admin"]).post(f"/users/{membership.pk}/remove/", **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "members-changed"
    assert "Removed field_tech@alpha.example" in html(response)
    assert not Membership.unscoped.filter(pk=membership.pk).exists()
    assert not SiteRoleAssignment.unscoped.filter(user=membership.user).exists()


def test_remove_without_htmx_redirects_with_a_message(org_a: OrgWorld) -> None:
    membership = Membership.unscoped.get(user=org_a.users["viewer"])
    client = signed_in(org_a.users["owner"])
    response = client.post(f"/users/{membership.pk}/remove/", follow=True)
    assert response.redirect_chain == [("/users/", 302)]
    assert "Removed viewer@alpha.example" in html(response)


def test_site_roles_assign_and_remove(org_a: OrgWorld, org_b: OrgWorld) -> None:
    membership = Membership.unscoped.get(user=org_a.users["viewer"])
    client = signed_in(org_a.users["owner"])
    site = org_a.sites[0]
    response = client.post(
        f"/users/{membership.pk}/site-roles/",
        {"site": site.pk, "role": builtin("operator").pk},
        **HTMX,
    )
    assert f"{site.name}: Operator" in html(response)
    assignment = SiteRoleAssignment.unscoped.get(user=membership.user, site=site)
    foreign = client.post(
        f"/users/{membership.pk}/site-roles/",
        {"site": org_b.sites[0].pk, "role": builtin("operator").pk},
        **HTMX,
    )
    assert "Select a valid choice" in html(foreign)
    assert not SiteRoleAssignment.unscoped.filter(site=org_b.sites[0]).exists()
    removed = client.post(f"/users/site-roles/{assignment.pk}/remove/", **HTMX)
    assert "Org role at every site" in html(removed)
    assert not SiteRoleAssignment.unscoped.filter(pk=assignment.pk).exists()


def test_other_orgs_members_are_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    theirs = Membership.unscoped.get(user=org_b.users["viewer"])
    their_assignment = SiteRoleAssignment.unscoped.create(
        user=org_b.users["viewer"], site=org_b.sites[0], role=builtin("operator")
    )
    assert (
        client.post(f"/users/{theirs.pk}/role/", {"role": builtin("admin").pk}).status_code == 404
    )
    assert client.post(f"/users/{theirs.pk}/remove/").status_code == 404
    assert (
        client.post(f"/users/{theirs.pk}/site-roles/", {"site": org_a.sites[0].pk}).status_code
        == 404
    )
    assert client.post(f"/users/site-roles/{their_assignment.pk}/remove/").status_code == 404
    assert Membership.unscoped.filter(pk=theirs.pk, role__slug="viewer").exists()
    assert SiteRoleAssignment.unscoped.filter(pk=their_assignment.pk).exists()
    assert "viewer@bravo.example" not in html(client.get("/users/"))


def test_search_and_pagination(org_a: OrgWorld, django_assert_max_num_queries) -> None:
    viewer = builtin("viewer")
    for i in range(30):
        Membership.unscoped.create(
            user=make_user(f"rack{i:02}@alpha.example"), org=org_a.org, role=viewer
        )
    client = signed_in(org_a.users["owner"])
    found = client.get("/users/?q=rack1", **HTMX)
    body = html(found)
    assert "<html" not in body
    assert "rack10@alpha.example" in body and "rack20@alpha.example" not in body
    first = html(client.get("/users/"))
    assert "Page 1 of 2" in first
    assert "rack25@alpha.example" in html(client.get("/users/?page=2"))
    assert "No members match" in html(client.get("/users/?q=nobody-here"))
    assert "owner@alpha.example" not in html(client.get("/users/?role=viewer", **HTMX))
    with django_assert_max_num_queries(20):
        client.get("/users/")
