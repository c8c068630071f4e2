"""What a new user tripped over: the API in a browser, the admin without staff, role and site
pages, the API index and docs, leftover sign-in library pages and their Title Case."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.api.urls import router
from accounts.models import ActivityEvent, Role, Site, User
from accounts.services import roles
from fleet.api.urls import router as fleet_router
from tests.accounts.conftest import browser, post_form, sign_in
from tests.accounts.pages.support import HTMX, assert_csp_clean, builtin, html, signed_in
from tests.conftest import PASSWORD, OrgWorld

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
V1_LISTS = [
    f"/api/v1/{prefix}/"
    for registry in (router.registry, fleet_router.registry)
    for prefix, _viewset, _basename in registry
]


# --- 1. The API opened in a browser ---------------------------------------------------------------


@pytest.mark.parametrize("path", V1_LISTS)
@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html"])
def test_every_api_list_opened_in_a_browser_answers_json(
    org_a: OrgWorld, path: str, accept: str
) -> None:
    response = signed_in(org_a.users["owner"]).get(path, HTTP_ACCEPT=accept)
    assert response.status_code < 500, (path, response.status_code)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    if accept == BROWSER_ACCEPT:
        assert response.status_code == 200, (path, response.status_code)


@pytest.mark.parametrize("path", V1_LISTS)
def test_an_anonymous_browser_gets_a_json_refusal(db: None, path: str) -> None:
    response = Client().get(path, HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code in {401, 403}
    assert response["Content-Type"].startswith("application/json")


# --- 2. The admin for a signed-in non-staff user ---------------------------------------------------


def test_the_admin_tells_a_non_staff_member_they_have_no_access(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])  # an org admin, not Django staff
    response = client.get("/admin/", follow=True)  # a redirect loop raises RedirectCycleError
    assert response.status_code == 403
    assert response.redirect_chain == [("/admin/login/?next=/admin/", 302)]
    body = html(response)
    assert "No access to the admin" in body and org_a.users["admin"].email in body
    assert f'href="{reverse("dashboard")}"' in body
    assert_csp_clean(response)


def test_anonymous_admin_visitors_sign_in_and_come_back_to_the_admin(db: None) -> None:
    response = Client().get("/admin/login/?next=/admin/accounts/site/")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/accounts/login/"
    assert parse_qs(location.query)["next"] == ["/admin/accounts/site/"]  # not the admin login


def test_the_admin_sign_in_refuses_foreign_next_urls(db: None) -> None:
    response = Client().get("/admin/login/?next=https://evil.example/")
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == ["/admin/"]


def test_signed_in_staff_pass_through_the_admin_sign_in(org_a: OrgWorld) -> None:
    staff = org_a.users["owner"]
    User.unscoped.filter(pk=staff.pk).update(is_staff=True)
    response = signed_in(staff).get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"


# --- 3. A role's own URL, and descriptions in the matrix -------------------------------------------


def custom_role(world: OrgWorld, name: str = "Night shift", description: str = "") -> Role:
    return roles.role_create(
        actor=Actor.for_user(world.users["owner"]),
        org=world.org,
        name=name,
        description=description,
        permissions=["site:read", "user:read"],
    )


def test_get_on_a_role_lands_on_its_column_in_the_matrix(org_a: OrgWorld) -> None:
    role = custom_role(org_a)
    for who in ("viewer", "owner"):
        response = signed_in(org_a.users[who]).get(f"/roles/{role.pk}/")
        assert response.status_code == 302, who
        assert response["Location"] == f"/roles/#role-column-{role.pk}"
    page = html(signed_in(org_a.users["viewer"]).get("/roles/"))
    assert f'id="role-column-{role.pk}"' in page
    builtin_viewer = builtin("viewer")
    response = signed_in(org_a.users["viewer"]).get(f"/roles/{builtin_viewer.pk}/")
    assert response["Location"] == f"/roles/#role-column-{builtin_viewer.pk}"


def test_another_orgs_role_is_a_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    theirs = custom_role(org_b)
    assert signed_in(org_a.users["owner"]).get(f"/roles/{theirs.pk}/").status_code == 404


def test_role_descriptions_are_shown_and_editable_by_role_managers(org_a: OrgWorld) -> None:
    role = custom_role(org_a, description="Operators of the night shift")
    viewer_page = html(signed_in(org_a.users["viewer"]).get("/roles/"))
    assert '<span class="role-desc">Operators of the night shift</span>' in viewer_page
    assert builtin("viewer").description in viewer_page  # built-ins' descriptions too
    assert 'name="description"' not in viewer_page.split('id="roles"', 1)[1].split("<tbody>")[0]

    owner = signed_in(org_a.users["owner"])
    assert f'id="role-description-{role.pk}"' in html(owner.get("/roles/"))
    response = owner.post(
        f"/roles/{role.pk}/",
        {"name": "Night shift", "description": "Nights and weekends", "permissions": ["site:read"]},
        **HTMX,
    )
    assert response.status_code == 200
    role.refresh_from_db()
    assert role.description == "Nights and weekends" and role.permissions == ["site:read"]
    # a form without the field (a script, an older page) keeps the description
    owner.post(f"/roles/{role.pk}/", {"name": "Night shift", "permissions": ["site:read"]}, **HTMX)
    role.refresh_from_db()
    assert role.description == "Nights and weekends"


def test_only_role_managers_may_save_a_role(org_a: OrgWorld) -> None:
    role = custom_role(org_a)
    response = signed_in(org_a.users["viewer"]).post(
        f"/roles/{role.pk}/", {"name": "Mine", "description": "x"}
    )
    assert response.status_code == 403
    role.refresh_from_db()
    assert role.name == "Night shift"


# --- 4. API index, docs and favicon ----------------------------------------------------------------


def test_api_root_links_the_versions_schema_and_docs(db: None) -> None:
    response = Client().get("/api/")
    assert response.status_code == 200
    assert response.json() == {
        "v1": "http://testserver/api/v1/",
        "schema": "http://testserver/api/schema/",
        "docs": "http://testserver/api/docs/",
    }


def test_api_v1_index_links_every_resource_and_each_link_works(org_a: OrgWorld) -> None:
    index = Client().get("/api/v1/")
    assert index.status_code == 200
    links = index.json()
    assert {"schema", "docs"} <= set(links)
    assert {f"/api/v1/{key}/" for key in links if key not in {"schema", "docs"}} == set(V1_LISTS)
    client = signed_in(org_a.users["owner"])
    for url in links.values():
        assert client.get(url).status_code == 200, url


def test_swagger_ui_follows_the_theme_and_links_back_to_the_app(db: None) -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    body = html(response)
    assert 'href="/"' in body and "Back to Rigwarden" in body
    for asset in ("css/swagger.css", "js/theme.js", "js/swagger.js"):
        assert f"/static/{asset}" in body, asset
    # within the page's CSP: only the one inline <style> drf-spectacular ships, scripts from files
    assert "style-src 'self' 'unsafe-inline'" in response["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    css = open(finders.find("css/swagger.css")).read()  # noqa: SIM115 - a test reading a file
    assert "html.dark-mode body" in css and "prefers-color-scheme: dark" in css
    assert "dark-mode" in open(finders.find("js/swagger.js")).read()  # noqa: SIM115


def test_favicon_ico_is_the_logo(db: None) -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith(".svg") and "/static/img/logo" in response["Location"]
    assert Client().get(response["Location"]).status_code == 200


# --- 5. The Sites page -----------------------------------------------------------------------------


def test_sites_page_lists_the_switchers_sites_and_only_managers_get_the_forms(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    viewer_page = html(signed_in(org_a.users["viewer"]).get("/sites/"))
    for site in org_a.sites:
        assert site.name in viewer_page
    assert org_b.sites[0].name not in viewer_page
    assert 'action="/sites/create/"' not in viewer_page and 'name="name"' not in viewer_page
    assert 'href="/sites/"' in viewer_page  # the nav link

    owner_response = signed_in(org_a.users["owner"]).get("/sites/")
    assert_csp_clean(owner_response)
    owner_page = html(owner_response)
    assert 'action="/sites/create/"' in owner_page
    assert f'id="site-name-{org_a.sites[0].pk}"' in owner_page


def test_a_member_without_site_read_cannot_open_the_page(org_a: OrgWorld) -> None:
    from tests.accounts.pages.support import no_permission_member

    assert signed_in(no_permission_member(org_a)).get("/sites/").status_code == 403


def test_site_managers_create_rename_and_delete_sites(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    created = client.post("/sites/create/", {"name": "Tromsø Container 3", "location": "Tromsø"})
    assert created.status_code == 302 and created["Location"] == "/sites/"
    site = Site.unscoped.get(org=org_a.org, name="Tromsø Container 3")
    assert site.location == "Tromsø" and site.slug == "troms-container-3"

    renamed = client.post(f"/sites/{site.pk}/", {"name": "Tromsø C3", "location": "Norway"}, **HTMX)
    assert renamed.status_code == 200
    body = html(renamed)
    assert "<html" not in body and "Saved the site Tromsø C3" in body
    # the site switcher in the top bar follows (an out-of-band swap)
    assert 'id="scope" hx-swap-oob="true"' in body and ">Tromsø C3</option>" in body
    site.refresh_from_db()
    assert (site.name, site.location) == ("Tromsø C3", "Norway")

    assert client.post(f"/sites/{site.pk}/delete/", **HTMX).status_code == 200
    assert not Site.unscoped.filter(pk=site.pk).exists()
    verbs = set(ActivityEvent.unscoped.filter(org=org_a.org).values_list("verb", flat=True))
    assert {"site.create", "site.update", "site.delete"} <= verbs


def test_site_errors_land_on_the_form_or_the_row(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    duplicate = client.post("/sites/create/", {"name": org_a.sites[0].name}, **HTMX)
    assert duplicate.status_code == 200 and "already has a site" in html(duplicate)
    blank = client.post(f"/sites/{org_a.sites[0].pk}/", {"name": "  "}, **HTMX)
    assert 'class="row-error"' in html(blank)
    org_a.sites[0].refresh_from_db()
    assert org_a.sites[0].name == "alpha site 1"


@pytest.mark.parametrize("who", ["operator", "viewer", "field_tech"])
def test_members_without_site_manage_cannot_write(org_a: OrgWorld, who: str) -> None:
    client = signed_in(org_a.users[who])
    site = org_a.sites[0]
    assert client.post("/sites/create/", {"name": "Sneaky"}).status_code == 403
    assert client.post(f"/sites/{site.pk}/", {"name": "Sneaky"}).status_code == 403
    assert client.post(f"/sites/{site.pk}/delete/").status_code == 403
    assert not Site.unscoped.filter(name="Sneaky").exists()
    assert Site.unscoped.filter(pk=site.pk).exists()


def test_another_orgs_site_is_a_404(org_a: OrgWorld, org_b: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    theirs = org_b.sites[0]
    assert client.post(f"/sites/{theirs.pk}/", {"name": "Mine"}).status_code == 404
    assert client.post(f"/sites/{theirs.pk}/delete/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "bravo site 1"
    # org B's owner sees only org B's sites, and can't reach org A's either
    other = signed_in(org_b.users["owner"])
    assert org_a.sites[0].name not in html(other.get("/sites/"))
    assert other.post(f"/sites/{org_a.sites[0].pk}/delete/").status_code == 404
    assert Site.unscoped.filter(pk=org_a.sites[0].pk).exists()


def test_the_sites_page_refuses_get_on_its_write_urls(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["owner"])
    assert client.get("/sites/create/").status_code == 405
    assert client.get(f"/sites/{org_a.sites[0].pk}/delete/").status_code == 405


# --- 7. Leftover sign-in library pages, sentence case, a way back from recovery codes -------------


@pytest.mark.parametrize("path", ["/accounts/email/", "/accounts/3rdparty/"])
def test_email_management_and_account_connections_are_gone(org_a: OrgWorld, path: str) -> None:
    assert signed_in(org_a.users["owner"]).get(path).status_code == 404


def test_accounts_root_goes_to_the_security_page(org_a: OrgWorld) -> None:
    response = signed_in(org_a.users["owner"]).get("/accounts/")
    assert response.status_code == 302 and response["Location"] == "/security/"


class _Labels(HTMLParser):
    """Text of page titles, headings, buttons and button-like links."""

    TAGS = {"title", "h1", "h2", "h3", "button", "summary"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag in self.TAGS or (tag == "a" and "btn" in classes):
            self.stack.append(True)
            self.texts.append("")
        elif tag not in {"br", "img", "input", "meta", "link", "svg", "path", "circle", "rect"}:
            self.stack.append(False)

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if any(self.stack):
            self.texts[-1] += data


PROPER = {"Rigwarden", "API", "TOTP", "Django", "MFA"}


def title_case(body: str) -> list[str]:
    """Labels with a capitalised word after the first ("Change Password"), names excepted."""
    parser = _Labels()
    parser.feed(body)
    found = []
    for text in (" ".join(t.split()) for t in parser.texts):
        words = [w.strip("·,.:?!()“”\"'") for w in text.split()][1:]
        if any(w[:1].isupper() and w not in PROPER and not w.isupper() for w in words if w):
            found.append(text)
    return found


SIGNED_IN_PAGES = [
    "/accounts/password/change/",
    "/accounts/2fa/",
    "/accounts/2fa/totp/activate/",
    "/accounts/logout/",
    "/accounts/reauthenticate/",
    "/",
    "/users/",
    "/roles/",
    "/sites/",
    "/tokens/",
    "/security/",
    "/activity/",
]
ANONYMOUS_PAGES = [
    "/accounts/login/",
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
]


def reauthenticated_get(client: Client, path: str) -> Any:
    """GET a security page; allauth may ask for the password again first (even after sign-in)."""
    response = client.get(path)
    if response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/"):
        assert post_form(client, response["Location"], {"password": PASSWORD}).status_code == 302
        response = client.get(path)
    return response


def test_title_case_detector_catches_the_library_defaults() -> None:
    assert title_case("<h1>Change Password</h1><button>Sign In</button>") == [
        "Change Password",
        "Sign In",
    ]
    assert title_case("<h1>Rigwarden API tokens</h1><a class='btn'>Back to security</a>") == []


def test_sign_in_pages_use_sentence_case(org_a: OrgWorld, ip: str) -> None:
    anonymous = browser(ip)
    for path in ANONYMOUS_PAGES:
        response = anonymous.get(path)
        assert response.status_code == 200, path
        assert title_case(html(response)) == [], path
    client = browser(ip)
    assert sign_in(client, org_a.users["viewer"].email, PASSWORD).status_code == 302
    for path in SIGNED_IN_PAGES:
        response = reauthenticated_get(client, path)
        assert response.status_code == 200, (path, response.status_code)
        assert title_case(html(response)) == [], path


def test_recovery_codes_page_has_a_way_back_in_sentence_case(org_a: OrgWorld, ip: str) -> None:
    user = org_a.users["operator"]
    client = browser(ip)
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)
    page = reauthenticated_get(client, "/accounts/2fa/recovery-codes/")
    assert page.status_code == 200
    body = html(page)
    assert f'<a class="btn" href="{reverse("security")}">Back to security</a>' in body
    assert "<h1>Recovery codes</h1>" in " ".join(body.split()).replace("> ", ">").replace(" <", "<")
    assert title_case(body) == []
    generate = client.get("/accounts/2fa/recovery-codes/generate/")
    assert generate.status_code == 200 and "Back to security" in html(generate)
    assert title_case(html(generate)) == []


def test_the_compiled_catalog_matches_its_source() -> None:
    """locale/en's .mo is committed (no gettext needed to run); it must be rebuilt with the .po."""
    import gettext
    from pathlib import Path

    from django.conf import settings

    folder = Path(settings.LOCALE_PATHS[0]) / "en" / "LC_MESSAGES"
    source = dict(
        re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', (folder / "django.po").read_text(), re.M)
    )
    with (folder / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)
    assert source and {k: catalog.gettext(k) for k in source} == source
    assert len(catalog._catalog) - 1 == len(source)  # type: ignore[attr-defined]  # minus the header


# --- 8. Nothing in our templates that the CSP (script-src/style-src 'self') would block ------------


def test_no_template_carries_inline_styles_scripts_or_handlers() -> None:
    from pathlib import Path

    from django.conf import settings

    inline = re.compile(
        r"<[^>]*\sstyle\s*=|<style\b|<[^>]*\son[a-z]+\s*=|<script(?![^>]*\bsrc=)(?![^>]*application/json)",
        re.I,
    )
    offenders = [
        f"{path.relative_to(settings.BASE_DIR)}: {match.group(0)[:60]}"
        for path in Path(settings.BASE_DIR, "templates").rglob("*.html")
        for match in inline.finditer(re.sub(r"\{#.*?#\}", "", path.read_text()))  # not comments
    ]
    assert offenders == []
