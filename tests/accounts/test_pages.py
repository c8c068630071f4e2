"""Server-rendered pages: access per role, scoped writes through services, CSP-clean markup."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from accounts.actor import Actor
from accounts.models import (
    ActivityEvent,
    ApiToken,
    LoginEvent,
    Membership,
    Role,
    SiteRoleAssignment,
    TrackedSession,
    User,
)
from accounts.permissions import CATALOG
from accounts.services import activity as activity_service
from accounts.services import invitations, roles, tokens
from tests.conftest import PASSWORD, ROLES, OrgWorld, make_user

PAGES = ["/", "/users/", "/roles/", "/tokens/", "/security/", "/activity/"]
HTMX = {"HTTP_HX_REQUEST": "true"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|<[^>]*\sstyle=", re.I)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)


@pytest.fixture(autouse=True)
def private_cache(settings, request):
    """allauth's rate limits live in the cache: give every test its own, not the shared Redis."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def builtin(slug: str) -> Role:
    return Role.unscoped.get(slug=slug, org__isnull=True)


def html(response) -> str:
    return response.content.decode()


def assert_csp_clean(response) -> None:
    assert "script-src 'self'" in response["Content-Security-Policy"]
    body = html(response)
    assert not INLINE_SCRIPT.search(body), INLINE_SCRIPT.search(body)
    assert not INLINE_STYLE.search(body), INLINE_STYLE.search(body)
    assert not INLINE_HANDLER.search(body), INLINE_HANDLER.search(body)


def no_permission_member(world: OrgWorld) -> User:
    role = Role.unscoped.create(org=world.org, slug="nothing", name="Nothing", permissions=[])
    user = make_user(f"nothing@{world.org.slug}.example")
    Membership.unscoped.create(user=user, org=world.org, role=role)
    return user


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_every_builtin_role_sees_every_page(org_a: OrgWorld, role: str, path: str) -> None:
    response = signed_in(org_a.users[role]).get(path)
    assert response.status_code == 200
    assert org_a.org.name in html(response)
    assert_csp_clean(response)


def test_member_without_permissions_gets_403_and_a_trimmed_nav(org_a: OrgWorld) -> None:
    client = signed_in(no_permission_member(org_a))
    for path in ("/users/", "/roles/", "/activity/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "user:read" in html(response) or "activity:read" in html(response)
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert 'href="/users/"' not in html(dashboard)
    assert 'href="/activity/"' not in html(dashboard)
    assert 'href="/tokens/"' in html(dashboard)
    assert 'href="/security/"' in html(dashboard)


def test_user_without_an_org_gets_guidance_and_403s(outsider: User) -> None:
    client = signed_in(outsider)
    assert "not in an organization" in html(client.get("/"))
    assert client.get("/users/").status_code == 403
    assert client.get("/tokens/").status_code == 200


@pytest.mark.parametrize("role", ["operator", "viewer", "field_tech"])
def test_writes_need_their_permission(org_a: OrgWorld, role: str) -> None:
    client = signed_in(org_a.users[role])
    target = Membership.unscoped.get(user=org_a.users["viewer"])
    assert (
        client.post(
            "/users/invite/", {"email": "new@x.example", "role": builtin("viewer").pk}
        ).status_code
        == 403
    )
    assert (
        client.post(f"/users/{target.pk}/role/", {"role": builtin("admin").pk}).status_code == 403
    )
    assert client.post(f"/users/{target.pk}/remove/").status_code == 403
    assert client.post("/roles/create/", {"name": "Sneaky"}).status_code == 403
    assert not User.objects.filter(email="new@x.example").exists()
    assert Membership.unscoped.filter(pk=target.pk, role__slug="viewer").exists()
    assert not Role.unscoped.filter(name="Sneaky").exists()


def test_write_urls_refuse_get(org_a: OrgWorld) -> None:
    assert signed_in(org_a.users["owner"]).get("/users/invite/").status_code == 405


# --- Users -----------------------------------------------------------------------------------


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


# --- Roles -----------------------------------------------------------------------------------


def test_matrix_lists_the_catalog_and_keeps_builtins_read_only(org_a: OrgWorld) -> None:
    custom = Role.unscoped.create(
        org=org_a.org, slug="night", name="Night shift", permissions=["miner:read"]
    )
    owner_view = html(signed_in(org_a.users["owner"]).get("/roles/"))
    for permission, description in CATALOG.items():
        assert permission in owner_view
        assert escape(description) in owner_view
    editable_columns = 1  # the custom role; built-ins are never editable
    assert owner_view.count('type="checkbox"') == editable_columns * len(CATALOG)
    assert f'form="role-{custom.pk}" name="permissions" value="miner:read" checked' in owner_view
    viewer_view = html(signed_in(org_a.users["viewer"]).get("/roles/"))
    assert 'type="checkbox"' not in viewer_view
    assert "Night shift" in viewer_view


def test_create_update_delete_a_custom_role(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    created = client.post(
        "/roles/create/", {"name": "Night shift", "copy_from": builtin("viewer").pk}, **HTMX
    )
    assert created.status_code == 200
    role = Role.unscoped.get(org=org_a.org, name="Night shift")
    assert set(role.permissions) == set(builtin("viewer").permissions)
    updated = client.post(
        f"/roles/{role.pk}/",
        {"name": "Nights", "permissions": ["miner:read", "miner:reboot"]},
        **HTMX,
    )
    assert "Saved the role Nights" in html(updated)
    role.refresh_from_db()
    assert (role.name, role.permissions) == ("Nights", ["miner:read", "miner:reboot"])
    unknown = client.post(
        f"/roles/{role.pk}/", {"name": "Nights", "permissions": ["miner:explode"]}, **HTMX
    )
    assert "Select a valid choice" in html(unknown)
    duplicate = client.post("/roles/create/", {"name": "Operator"}, **HTMX)
    assert "already exists" in html(duplicate)
    assert client.post(f"/roles/{role.pk}/delete/", **HTMX).status_code == 200
    assert not Role.unscoped.filter(pk=role.pk).exists()


def test_assigned_role_cannot_be_deleted(org_a: OrgWorld) -> None:
    role = Role.unscoped.create(org=org_a.org, slug="night", name="Night shift", permissions=[])
    Membership.unscoped.filter(user=org_a.users["viewer"]).update(role=role)
    response = signed_in(org_a.users["owner"]).post(f"/roles/{role.pk}/delete/", **HTMX)
    assert "still assigned" in html(response)
    assert Role.unscoped.filter(pk=role.pk).exists()


def test_builtin_and_foreign_roles_are_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = Role.unscoped.create(org=org_b.org, slug="night", name="Night shift", permissions=[])
    client = signed_in(org_a.users["owner"])
    assert (
        client.post(f"/roles/{builtin('viewer').pk}/", {"name": "X", "permissions": []}).status_code
        == 404
    )
    assert (
        client.post(f"/roles/{theirs.pk}/", {"name": "Mine", "permissions": []}).status_code == 404
    )
    assert client.post(f"/roles/{theirs.pk}/delete/").status_code == 404
    assert Role.unscoped.get(pk=theirs.pk).name == "Night shift"
    assert "Night shift" not in html(client.get("/roles/"))


# --- API tokens ------------------------------------------------------------------------------


def test_token_secret_is_shown_once_and_revoke_works(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    client = signed_in(user)
    response = client.post(
        "/tokens/create/", {"name": "exporter", "org": org_a.org.pk, "expires_in": "30"}, **HTMX
    )
    secret = re.search(r'value="(rw_[^"]+)"', html(response))
    assert secret, html(response)
    token = ApiToken.unscoped.get(user=user, name="exporter")
    assert token.token_hash != secret.group(1) and secret.group(1) not in token.token_hash
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    listing = html(client.get("/tokens/"))
    assert secret.group(1) not in listing and f"rw_{token.prefix}_" in listing
    revoked = client.post(f"/tokens/{token.pk}/revoke/", **HTMX)
    assert "Revoked" in html(revoked)
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_errors_and_scope(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    assert "This field is required" in html(client.post("/tokens/create/", {"name": ""}, **HTMX))
    other = tokens.api_token_create(
        actor=Actor.system(), user=org_a.users["viewer"], name="theirs"
    ).token
    foreign = tokens.api_token_create(
        actor=Actor.system(), user=org_b.users["owner"], name="foreign"
    ).token
    assert client.post(f"/tokens/{other.pk}/revoke/").status_code == 404
    assert client.post(f"/tokens/{foreign.pk}/revoke/").status_code == 404
    assert (
        ApiToken.unscoped.filter(revoked_at__isnull=True, pk__in=[other.pk, foreign.pk]).count()
        == 2
    )
    assert "theirs" not in html(client.get("/tokens/"))


# --- Security --------------------------------------------------------------------------------


def password_login(user: User) -> Client:
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0")
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, html(response)
    return client


def test_sessions_can_be_revoked(org_a: OrgWorld) -> None:
    user = org_a.users["operator"]
    mine, other, third = password_login(user), password_login(user), password_login(user)
    page = html(mine.get("/security/"))
    assert "This session" in page and "Firefox 131 on Linux" in page
    other_session = TrackedSession.objects.get(session_key=other.session.session_key)
    response = mine.post(f"/security/sessions/{other_session.pk}/revoke/", **HTMX)
    assert "Signed that session out" in html(response)
    assert other.get("/").status_code == 302
    current = TrackedSession.objects.get(session_key=mine.session.session_key)
    refused = mine.post(f"/security/sessions/{current.pk}/revoke/", **HTMX)
    assert "use Sign out" in html(refused)
    everyone = mine.post("/security/sessions/revoke-others/", **HTMX)
    assert "Signed out 1 other session" in html(everyone)
    assert third.get("/").status_code == 302
    assert mine.get("/").status_code == 200


def test_other_users_sessions_are_404(org_a: OrgWorld) -> None:
    victim = password_login(org_a.users["viewer"])
    session = TrackedSession.objects.get(session_key=victim.session.session_key)
    assert (
        signed_in(org_a.users["owner"]).post(f"/security/sessions/{session.pk}/revoke/").status_code
        == 404
    )
    assert victim.get("/").status_code == 200


def test_security_page_shows_sign_in_history_and_mfa_links(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    Client().post("/accounts/login/", {"login": user.email, "password": "wrong-password-1"})
    client = password_login(user)
    page = html(client.get("/security/"))
    assert "Wrong credentials" in page and "Success" in page
    assert "/accounts/2fa/totp/activate/" in page
    assert "/accounts/password/change/" in page
    assert LoginEvent.objects.filter(email=user.email).count() == 2


# --- Activity --------------------------------------------------------------------------------


def test_activity_is_scoped_filtered_and_exportable(org_a: OrgWorld, org_b: OrgWorld) -> None:
    actor = Actor.system("tests")
    activity_service.activity_record(
        actor=actor, verb="site.update", org=org_a.org, site=org_a.sites[0]
    )
    activity_service.activity_record(actor=actor, verb="member.invite", org=org_a.org)
    activity_service.activity_record(actor=actor, verb="bravo.secret", org=org_b.org)
    client = signed_in(org_a.users["viewer"])
    everything = html(client.get("/activity/"))
    assert "site.update" in everything and "member.invite" in everything
    assert "bravo.secret" not in everything
    filtered = client.get("/activity/?verb=site", **HTMX)
    body = html(filtered)
    assert "<html" not in body
    assert "site.update" in body and "member.invite" not in body
    assert f"/api/v1/activity/export/?verb=site&amp;org={org_a.org.pk}" in body
    assert "No events match" in html(client.get("/activity/?verb=nothing"))
    assert "Some filters were ignored" in html(client.get("/activity/?since=yesterday-ish"))


def test_activity_defaults_to_the_switcher_site(org_a: OrgWorld) -> None:
    actor = Actor.system("tests")
    activity_service.activity_record(
        actor=actor, verb="at.site.one", org=org_a.org, site=org_a.sites[0]
    )
    activity_service.activity_record(
        actor=actor, verb="at.site.two", org=org_a.org, site=org_a.sites[1]
    )
    client = signed_in(org_a.users["owner"])
    client.post("/switch/", {"site": org_a.sites[0].pk, "next": "/activity/"})
    page = html(client.get("/activity/"))
    assert "at.site.one" in page and "at.site.two" not in page
    assert "at.site.two" in html(client.get("/activity/?site="))


def test_empty_activity_has_an_empty_state(org_a: OrgWorld) -> None:
    ActivityEvent.unscoped.all().delete()
    assert "No activity yet" in html(signed_in(org_a.users["owner"]).get("/activity/"))


# --- Shell, switcher, sign-in ------------------------------------------------------------------


def test_org_switcher_changes_what_pages_show(org_a: OrgWorld, org_b: OrgWorld) -> None:
    user = org_a.users["admin"]
    Membership.unscoped.create(user=user, org=org_b.org, role=builtin("viewer"))
    client = signed_in(user)
    shell = html(client.get("/users/"))
    assert 'name="org"' in shell and org_b.org.name in shell
    response = client.post("/switch/", {"org": org_b.org.pk, "next": "/users/"})
    assert response["Location"] == "/users/"
    page = html(client.get("/users/"))
    assert "viewer@bravo.example" in page and "viewer@alpha.example" not in page
    assert 'action="/users/invite/"' not in page  # a viewer in bravo can't invite
    theirs = Membership.unscoped.get(user=org_a.users["viewer"])
    assert client.post(f"/users/{theirs.pk}/remove/").status_code == 403


def test_sign_in_page_is_ours_without_sign_up(db: None) -> None:
    response = Client().get("/accounts/login/")
    body = html(response)
    assert response.status_code == 200
    assert "entrance-card" in body and "/static/css/app.css" in body
    assert "/accounts/signup/" not in body
    assert_csp_clean(response)


def test_lockout_message_is_shown(org_a: OrgWorld, settings) -> None:
    settings.LOGIN_LOCKOUT_THRESHOLD = 3
    client = Client()
    for _ in range(3):
        failed = client.post(
            "/accounts/login/", {"login": "viewer@alpha.example", "password": "nope-nope-1"}
        )
        assert "not correct" in html(failed)
    locked = client.post(
        "/accounts/login/", {"login": "viewer@alpha.example", "password": PASSWORD}
    )
    assert "Too many failed sign-in attempts" in html(locked)
    assert locked.status_code == 200


def test_sign_in_lands_on_the_dashboard(org_a: OrgWorld) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/", {"login": "owner@alpha.example", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    body = html(response)
    assert "Welcome" in body and org_a.org.name in body and "Sign out" in body


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/change/",
        "/accounts/2fa/totp/activate/",
        "/accounts/logout/",
        "/nowhere/",
    ],
)
def test_allauth_and_error_pages_use_the_shell_and_stay_csp_clean(
    org_a: OrgWorld, path: str
) -> None:
    client = password_login(org_a.users["owner"])
    reauth = client.get("/accounts/reauthenticate/")
    assert "entrance-card" in html(reauth)
    assert_csp_clean(reauth)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert 'class="sidebar"' in html(response)
    assert_csp_clean(response)


def test_invitation_page_is_csp_clean(org_a: OrgWorld) -> None:
    issued = invitations.member_invite(
        actor=Actor.system(),
        org=org_a.org,
        email="once@x.example",
        role=builtin("viewer"),
        base_url="http://testserver/",
    )
    first = Client().get(issued.accept_url.replace("http://testserver", ""))
    assert "Choose a password" in html(first)
    assert_csp_clean(first)


def test_roles_service_error_is_shown_inline(org_a: OrgWorld) -> None:
    role = roles.role_create(actor=Actor.system(), org=org_a.org, name="Temp", permissions=[])
    response = signed_in(org_a.users["owner"]).post(
        f"/roles/{role.pk}/", {"name": "", "permissions": []}, **HTMX
    )
    assert "This field is required" in html(response)
    assert Role.unscoped.get(pk=role.pk).name == "Temp"


def test_htmx_request_without_login_gets_hx_redirect(client) -> None:
    response = client.post("/users/invite/", HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")
