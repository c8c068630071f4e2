"""The role-matrix classes of the terminals API (collected through ``test_role_matrix.py``,
which imports them, so ``test_bad_input.py`` finds them too). Not a test module itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db.models import Model

from fleet import crypto
from terminals.api import remote as remote_views
from terminals.api import views
from terminals.models import Recording, SshHost, TerminalSession
from tests.accounts.matrix import Principal, RouteMatrix, holder
from tests.conftest import OrgWorld


def matrix_host(world: OrgWorld, i: int = 0) -> SshHost:
    host = SshHost.unscoped.create(
        org=world.org,
        site=world.sites[0],
        name=f"{world.org.slug} ssh {i}",
        address="127.0.0.1",
        port=2200 + i,
        username="root",
        auth_method="password",
    )
    host.secret = crypto.encrypt("pw", org_id=host.org_id, label=host.secret_label)
    host.save(update_fields=["secret"])
    return host


def matrix_session(world: OrgWorld, i: int = 0) -> TerminalSession:
    host = matrix_host(world, 100 + i)
    return TerminalSession.unscoped.create(
        org=world.org, site=world.sites[0], host=host, owner=holder(world, i)
    )


class _Loopback:
    @pytest.fixture(autouse=True)
    def _loopback(self, settings: Any, tmp_path: Path) -> None:
        settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        settings.DATA_DIR = tmp_path


class TestSshHosts(_Loopback, RouteMatrix):
    """Hosts are seen with terminal:open (owner, admin, operator); written with
    terminal:manage (owner, admin)."""

    viewset = views.SshHostViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return matrix_host(world, i)

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            return {
                "site": world.sites[0].pk,
                "name": f"{world.org.slug} new host",
                "address": "127.0.0.1",
                "username": "root",
                "auth_method": "password",
                "secret": "hunter2",
            }
        return {"name": f"{world.org.slug} renamed", "port": 2222}

    def expected(self, principal: Principal, route: Any) -> set[int]:
        wanted = super().expected(principal, route)
        if route.action == "retrust" and wanted == {200, 201, 202, 204}:
            return {400}  # the key hasn't changed: nothing to re-trust
        return wanted


class TestTerminalSessions(_Loopback, RouteMatrix):
    """Sessions are their owner's alone: another member's session is a 404 for everyone
    (the holder owns it); opening one needs terminal:open at the host's site."""

    viewset = views.TerminalSessionViewSet
    list_query_ceiling = 4

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        return matrix_session(world, i)

    def can_see(self, principal: Principal) -> bool:
        return False

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        if action == "create":
            return {"host": matrix_host(world, 50).pk, "cols": 100, "rows": 30}
        return {}

    def expected(self, principal: Principal, route: Any) -> set[int]:
        wanted = super().expected(principal, route)
        if route.action == "create" and principal.org == "a" and wanted == {403}:
            return {400}  # hosts are seen with terminal:open: not a choice for them
        return wanted


class TestRecordings(_Loopback, RouteMatrix):
    """Recordings: the owner's own, and every one at a site where you hold terminal:manage."""

    viewset = views.RecordingViewSet

    def make_object(self, world: OrgWorld, i: int = 0) -> Model:
        from terminals.services.recordings import recordings_dir

        session = matrix_session(world, 10 + i)
        relative = f"{world.org.pk}/session-{session.pk}.cast"
        path = recordings_dir() / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hi"]\n')
        return Recording.unscoped.create(
            org=world.org, site=world.sites[0], session=session, path=relative, size=60
        )

    def can_see(self, principal: Principal) -> bool:
        return "terminal:manage" in principal.perms


class TestRemoteCommands(_Loopback, RouteMatrix):
    """The remote-command catalog needs terminal:open somewhere; a run needs it at every host's
    site, and a host the caller can't see is an unknown id (400). The run's host has nothing
    listening: it answers 200 with that host's "error"."""

    viewset = remote_views.RemoteCommandViewSet

    def payload(self, action: str, world: OrgWorld, obj: Model | None) -> dict[str, Any]:
        return {"hosts": [matrix_host(world, 60).pk], "command": "uptime"}

    def expected(self, principal: Principal, route: Any) -> set[int]:
        if principal.user is not None and route.action == "list":
            return {200} if "terminal:open" in principal.perms else {403}
        wanted = super().expected(principal, route)
        if route.action == "run" and principal.user is not None and 200 not in wanted:
            return {400}  # hosts are seen with terminal:open: not a choice for them
        return wanted


__all__ = ["TestRecordings", "TestRemoteCommands", "TestSshHosts", "TestTerminalSessions"]
