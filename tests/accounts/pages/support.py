"""Helpers of the server-rendered page suites: signed-in clients, built-in roles, CSP checks."""

from __future__ import annotations

import re

from django.test import Client

from accounts.models import Membership, Role, User
from tests.conftest import PASSWORD, OrgWorld, make_user

PAGES = ["/", "/users/", "/roles/", "/tokens/", "/security/", "/activity/"]
HTMX = {"HTTP_HX_REQUEST": "true"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|<[^>]*\sstyle=", re.I)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def password_login(user: User) -> Client:
    """Sign in through allauth's form (a tracked session with a browser's user agent)."""
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0")
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, html(response)
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
