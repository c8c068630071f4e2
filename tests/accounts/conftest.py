"""Helpers for the accounts suites: isolated cache, real sign-in through allauth's pages."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from accounts.models import User


@pytest.fixture(autouse=True)
def _own_cache(isolated_cache: None) -> None:
    """Every accounts test gets its own cache namespace (see ``isolated_cache``)."""


@pytest.fixture
def ip() -> str:
    """A client address of this test alone (lockouts and rate limits are per IP)."""
    a, b, c = uuid.uuid4().bytes[:3]
    return f"10.{a}.{b}.{c or 1}"


def browser(ip: str, agent: str = "pytest-browser/1.0") -> Client:
    """A Django test client that behaves like a browser: CSRF enforced, fixed IP and agent."""
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)


def csrf_token(client: Client, path: str = "/accounts/login/") -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return client.cookies["csrftoken"].value


def post_form(client: Client, path: str, data: dict[str, str]) -> object:
    """POST a form the way a browser does: fetch the page for the CSRF cookie first."""
    token = csrf_token(client, path)
    return client.post(path, {**data, "csrfmiddlewaretoken": token})


def sign_in(client: Client, email: str, password: str) -> object:
    return post_form(client, "/accounts/login/", {"login": email, "password": password})


def fresh(user: User) -> User:
    """The same user without memoised grants (what the next request would load)."""
    return User.objects.get(pk=user.pk)
