"""Fleet-node pages, admin, management commands and metrics: every role, two orgs."""

from __future__ import annotations

import io
import re
import sys

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import User
from fleet.models import EnrollmentCode, FleetNode, NodeStatus
from fleet.nodes.secrets import secret_hash
from fleetnode.state import DEFAULT_STATE_DIR
from tests.accounts.pages.support import assert_csp_clean, html, signed_in
from tests.conftest import ROLES, OrgWorld
from tests.fleet.nodes.support import FakeNode, enroll

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(org_a: OrgWorld, org_b: OrgWorld) -> dict[str, FakeNode]:
    return {
        "a_confirmed": enroll(org_a.users["admin"]),
        "a_pending": enroll(org_a.users["admin"], confirm=False),
        "b_confirmed": enroll(org_b.users["admin"]),
    }


def _names() -> dict[int, str]:
    return dict(FleetNode.unscoped.values_list("id", "fingerprint"))


@pytest.mark.parametrize("role", ROLES)
def test_the_list_shows_own_nodes_and_pending_fingerprints_only(
    org_a: OrgWorld, nodes: dict[str, FakeNode], role: str
) -> None:
    response = signed_in(org_a.users[role]).get("/nodes/")
    assert response.status_code == 200
    assert_csp_clean(response)
    body = html(response)
    assert nodes["a_pending"].fingerprint in body  # pending confirmations show fingerprints
    assert nodes["b_confirmed"].fingerprint not in body
    assert f"/nodes/{nodes['b_confirmed'].node_id}/" not in body
    assert f"/nodes/{nodes['a_confirmed'].node_id}/" in body
    assert ("Add node" in body) == (role in ("owner", "admin"))


def test_other_orgs_nodes_are_404_on_every_page(
    org_a: OrgWorld, nodes: dict[str, FakeNode]
) -> None:
    client = signed_in(org_a.users["owner"])
    other = nodes["b_confirmed"].node_id
    assert client.get(f"/nodes/{other}/").status_code == 404
    for action in ("confirm", "revoke"):
        assert client.post(f"/nodes/{other}/{action}/", {"fingerprint": "x"}).status_code == 404
    assert FleetNode.unscoped.get(pk=other).status == NodeStatus.CONFIRMED


def test_add_node_shows_the_code_once_and_the_exact_command(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    posted = client.post("/nodes/add/", {"site": org_a.sites[0].pk})
    assert posted.status_code == 302  # PRG: a reload of the page mints nothing
    response = client.get(posted["Location"])
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    code = re.search(r"data-enroll-code>([^<]+)<", html(response))
    assert code is not None
    command = (
        f"{sys.executable} -m fleetnode --state-dir ./fleetnode-state enroll "
        f"--server http://testserver --code {code[1]} --name node-1"
    )
    assert command in html(response)
    # the help agrees with the command: its --state-dir as printed, and the agent's own default
    help_text = html(response).split("data-enroll>")[1].split("<pre>")[0]
    assert "<code>--state-dir ./fleetnode-state</code>" in help_text
    assert f"default, <code>{DEFAULT_STATE_DIR}</code>" in help_text
    row = EnrollmentCode.unscoped.get()
    assert row.code_hash == secret_hash(code[1]) and row.site == org_a.sites[0]


@pytest.mark.parametrize("role", ["operator", "viewer", "field_tech"])
def test_only_managers_add_confirm_and_revoke(
    org_a: OrgWorld, nodes: dict[str, FakeNode], role: str
) -> None:
    client = signed_in(org_a.users[role])
    assert client.post("/nodes/add/").status_code == 403
    pending = nodes["a_pending"]
    response = client.post(
        f"/nodes/{pending.node_id}/confirm/", {"fingerprint": pending.fingerprint}
    )
    assert response.status_code == 403
    assert client.post(f"/nodes/{nodes['a_confirmed'].node_id}/revoke/").status_code == 403
    assert not EnrollmentCode.unscoped.filter(used_at__isnull=True).exists()
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.AWAITING


def test_detail_confirm_and_revoke_pages(org_a: OrgWorld, nodes: dict[str, FakeNode]) -> None:
    client = signed_in(org_a.users["admin"])
    pending = nodes["a_pending"]
    page = client.get(f"/nodes/{pending.node_id}/")
    assert page.status_code == 200 and "Confirm node" in html(page)
    wrong = client.post(
        f"/nodes/{pending.node_id}/confirm/", {"fingerprint": "0" * 16}, follow=True
    )
    assert "does not match" in html(wrong)
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.AWAITING
    client.post(f"/nodes/{pending.node_id}/confirm/", {"fingerprint": pending.fingerprint})
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.CONFIRMED
    client.post(f"/nodes/{pending.node_id}/revoke/")
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.REVOKED
    assert "Revoke node" not in html(client.get(f"/nodes/{pending.node_id}/"))


def test_bad_page_input_is_a_message_not_a_500(org_a: OrgWorld) -> None:
    client = signed_in(org_a.users["admin"])
    response = client.post("/nodes/add/", {"site": "1; drop"}, follow=True)
    assert response.status_code == 200 and "Choose a site" in html(response)
    assert client.post("/nodes/999999/confirm/").status_code == 404


def _staff(user: User) -> Client:
    User.objects.filter(pk=user.pk).update(is_staff=True)
    return signed_in(User.objects.get(pk=user.pk))


def test_admin_lists_own_nodes_and_confirms_by_fingerprint(
    org_a: OrgWorld, nodes: dict[str, FakeNode]
) -> None:
    client = _staff(org_a.users["admin"])
    listing = html(client.get("/admin/fleet/fleetnode/"))
    assert nodes["a_pending"].fingerprint in listing
    assert nodes["b_confirmed"].fingerprint not in listing
    pending = nodes["a_pending"]
    form = {"action": "confirm_nodes", "_selected_action": [pending.node_id]}
    asked = client.post("/admin/fleet/fleetnode/", form)
    assert asked.status_code == 200 and f"fingerprint-{pending.node_id}" in html(asked)
    client.post(
        "/admin/fleet/fleetnode/",
        {**form, "apply": "1", f"fingerprint-{pending.node_id}": "f" * 16},
    )
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.AWAITING
    client.post(
        "/admin/fleet/fleetnode/",
        {**form, "apply": "1", f"fingerprint-{pending.node_id}": pending.fingerprint},
    )
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.CONFIRMED
    # another org's node can't be selected into an action
    other = nodes["b_confirmed"].node_id
    client.post("/admin/fleet/fleetnode/", {"action": "revoke_nodes", "_selected_action": [other]})
    assert FleetNode.unscoped.get(pk=other).status == NodeStatus.CONFIRMED
    client.post(
        "/admin/fleet/fleetnode/",
        {"action": "revoke_nodes", "_selected_action": [pending.node_id]},
    )
    assert FleetNode.unscoped.get(pk=pending.node_id).status == NodeStatus.REVOKED
    assert client.get(f"/admin/fleet/fleetnode/{other}/change/").status_code in (302, 404)


def test_create_enrollment_code_prints_it_alone_on_the_last_line(org_a: OrgWorld) -> None:
    out = io.StringIO()
    call_command("create_enrollment_code", "--org", org_a.org.slug, stdout=out)
    code = out.getvalue().strip().splitlines()[-1]
    assert code.startswith("rwe_") and " " not in code
    assert EnrollmentCode.unscoped.get().code_hash == secret_hash(code)
    with pytest.raises(CommandError, match="No organization"):
        call_command("create_enrollment_code", "--org", "nope")
    with pytest.raises(CommandError, match="No site"):
        call_command("create_enrollment_code", "--org", org_a.org.slug, "--site", "nope")
    with pytest.raises(CommandError, match="between"):
        call_command("drain_nodes", "--max-reconnect-ms", "5")


def test_metrics_show_nodes_by_state_and_handshakes(nodes: dict[str, FakeNode]) -> None:
    from django.conf import settings

    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {getattr(settings, 'METRICS_TOKEN', '')}"
    )
    body = html(response)
    assert 'rigwarden_fleet_nodes{state="offline",status="confirmed"} 2.0' in body
    assert 'rigwarden_fleet_nodes{state="pending",status="awaiting_confirmation"} 1.0' in body
    assert 'rigwarden_node_handshakes_total{outcome="ok",step="register"}' in body
