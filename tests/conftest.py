"""Shared fixtures: two orgs and a user per built-in role in org A, plus an outsider in org B."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.models import Membership, Organization, Role, Site, User
from tests import asyncio_teardown

asyncio_teardown.install()

PASSWORD = "correct-horse-battery-9"
ROLES = ("owner", "admin", "operator", "viewer", "field_tech")


@dataclass
class OrgWorld:
    org: Organization
    sites: list[Site]
    users: dict[str, User] = field(default_factory=dict)


def make_user(
    email: str, org: Organization | None = None, role: str | None = None, password: str = PASSWORD
) -> User:
    user = User.objects.create_user(email=email, password=password)
    if org is not None and role is not None:
        Membership.unscoped.create(
            user=user, org=org, role=Role.unscoped.get(slug=role, org__isnull=True)
        )
    return user


def make_world(slug: str) -> OrgWorld:
    org = Organization.unscoped.create(name=slug.title(), slug=slug)
    sites = [
        Site.unscoped.create(org=org, name=f"{slug} site {i}", slug=f"{slug}-site-{i}")
        for i in (1, 2)
    ]
    world = OrgWorld(org, sites)
    for role in ROLES:
        world.users[role] = make_user(f"{role}@{slug}.example", org, role)
    return world


@pytest.fixture
def org_a(db: None) -> OrgWorld:
    return make_world("alpha")


@pytest.fixture
def org_b(db: None) -> OrgWorld:
    return make_world("bravo")


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("outsider@nowhere.example")


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


def api_client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api() -> type[APIClient]:
    return APIClient


@pytest.fixture
def isolated_cache(settings: object) -> None:
    """A cache key prefix of this test alone: allauth's rate limits and cached sessions live in
    Redis, which outlives tests, runs and xdist workers."""
    import uuid

    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}  # type: ignore[attr-defined]
    for conf in caches.values():
        conf["KEY_PREFIX"] = f"t{uuid.uuid4().hex[:12]}"
        if "locmem" in conf["BACKEND"].lower():
            conf["LOCATION"] = conf["KEY_PREFIX"]
    settings.CACHES = caches


@pytest.fixture(scope="session", autouse=True)
def _no_stray_connections_at_teardown(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """Thread pools (the proxy's, the control stream's) keep connections to the test database;
    they are cut before pytest-django drops it, so no test database is left behind."""
    yield
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith(
        "test_"
    ):
        return  # no test database was made (a run without database tests)
    with (
        django_db_blocker.unblock(),
        contextlib.suppress(DatabaseError),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own channel layer: a Redis layer's pools and receive lock are bound
    to the event loop that first used them, and pytest-asyncio gives every test a new loop, so
    a layer shared across tests could leave one test's consumer waiting on a dead loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _dial_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests dial nothing but loopback: the private ranges the product allows by default are
    refused here too, so no fuzzed or made-up address (10.x, 192.168.x) is ever contacted.
    Tests that talk to simulators allow 127.0.0.0/8 explicitly (tests/fleet/conftest.py)."""
    from fleet import netguard

    monkeypatch.setattr(netguard, "PRIVATE", ())
