"""Enrollment and sessions over REST: the happy path and every refusal security.md names."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ActivityEvent
from fleet.models import EnrollmentCode, FleetNode, NodeChallenge, NodeSession, NodeStatus
from fleet.nodes import enrollment
from fleet.nodes.secrets import secret_hash
from fleetnode import protocol
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.nodes.support import GATEWAY, FakeNode, enroll, new_code, session_token

pytestmark = pytest.mark.django_db


def _post(path: str, body: dict[str, object] | None = None, **extra: str) -> object:
    return APIClient().post(f"{GATEWAY}/{path}", body or {}, format="json", **extra)


def test_full_enrollment_yields_a_session(org_a: OrgWorld) -> None:
    node = enroll(org_a.users["admin"])
    row = FleetNode.unscoped.get(pk=node.node_id)
    assert row.status == NodeStatus.CONFIRMED
    assert row.fingerprint == node.fingerprint and len(row.fingerprint) == 16
    assert row.api_key_hash == secret_hash(node.api_key)  # only the hash is stored
    token = session_token(node)
    assert NodeSession.unscoped.get(node=row).token_hash == secret_hash(token)
    verbs = set(ActivityEvent.unscoped.filter(org=org_a.org).values_list("verb", flat=True))
    assert {"fleetnode.register", "fleetnode.confirm", "fleetnode.credentials"} <= verbs


def test_codes_are_random_hashed_one_use_and_expire(org_a: OrgWorld) -> None:
    code = new_code(org_a.users["admin"])
    assert len(code) >= 32  # 192 random bits, URL-safe
    row = EnrollmentCode.unscoped.get()
    assert row.code_hash == secret_hash(code) and code not in row.code_hash
    assert dt.timedelta(minutes=59) < row.expires_at - timezone.now() <= dt.timedelta(hours=1)
    first, second = FakeNode(), FakeNode()
    assert _post("register", first.register_body(code)).status_code == 201
    reused = _post("register", second.register_body(code))
    assert reused.status_code == 400 and "already used" in reused.json()["code"][0]
    expired = new_code(org_a.users["admin"])
    EnrollmentCode.unscoped.filter(used_at__isnull=True).update(expires_at=timezone.now())
    response = _post("register", FakeNode().register_body(expired))
    assert response.status_code == 400 and "expired" in response.json()["code"][0]
    unknown = _post("register", FakeNode().register_body("rwe_nope"))
    assert unknown.status_code == 400 and "Unknown" in unknown.json()["code"][0]


def test_register_needs_a_proof_by_the_key(org_a: OrgWorld) -> None:
    code = new_code(org_a.users["admin"])
    node, other = FakeNode(), FakeNode()
    body = node.register_body(code)
    body["proof"] = other.sign(code.encode())
    response = _post("register", body)
    assert response.status_code == 400 and "proof" in response.json()
    assert not FleetNode.unscoped.exists()
    assert EnrollmentCode.unscoped.get().used_at is None  # a bad proof doesn't burn the code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("identity_key", "not base64!"),
        ("identity_key", protocol.b64encode(b"short")),
        ("proof", 12),
        ("name", 7),
        ("code", None),
        ("agent_version", "x" * 41),
    ],
)
def test_register_bad_input_is_a_400_on_the_field(
    org_a: OrgWorld, field: str, value: object
) -> None:
    body = FakeNode().register_body(new_code(org_a.users["admin"]))
    body[field] = value
    response = _post("register", body)
    assert response.status_code == 400 and field in response.json(), response.content


def test_confirm_compares_fingerprints(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    node = enroll(org_a.users["admin"], confirm=False)
    url = f"/api/v1/fleet-nodes/{node.node_id}/confirm"
    wrong = admin.post(url, {"fingerprint": FakeNode().fingerprint}, format="json")
    assert wrong.status_code == 400 and "fingerprint" in wrong.json()
    assert FleetNode.unscoped.get().status == NodeStatus.AWAITING
    # the operator may type it with separators and capitals
    spaced = " ".join(node.fingerprint[i : i + 4] for i in range(0, 16, 4)).upper()
    ok = admin.post(url, {"fingerprint": spaced}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"
    again = admin.post(url, {"fingerprint": node.fingerprint}, format="json")
    assert again.status_code == 400


def test_credentials_once_in_time_and_only_when_confirmed(org_a: OrgWorld) -> None:
    admin = api_client_for(org_a.users["admin"])
    node = enroll(org_a.users["admin"], confirm=False)
    assert _post("credentials", node.credentials_body()).status_code == 409  # awaiting
    admin.post(
        f"/api/v1/fleet-nodes/{node.node_id}/confirm",
        {"fingerprint": node.fingerprint},
        format="json",
    )
    stale = _post("credentials", node.credentials_body(int(time.time()) - 301))
    assert stale.status_code == 400 and "ts" in stale.json()
    forged = FakeNode(node_id=node.node_id).credentials_body()
    assert _post("credentials", forged).status_code == 401
    first = _post("credentials", node.credentials_body())
    assert first.status_code == 200 and first.json()["api_key"].startswith("rwk_")
    assert first["Cache-Control"] == "no-store"
    assert _post("credentials", node.credentials_body()).status_code == 410


def test_api_key_alone_never_yields_a_session(org_a: OrgWorld) -> None:
    node = enroll(org_a.users["admin"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {node.api_key}"}
    challenge = _post("session/begin", **auth).json()["challenge"]  # type: ignore[attr-defined]
    # no signature, a signature by another key, a signature of something else
    for sig in ("", FakeNode().sign(protocol.b64decode(challenge)), node.sign(b"other")):
        response = _post("session/complete", {"challenge": challenge, "sig": sig}, **auth)
        assert response.status_code in (400, 401), response.content  # type: ignore[attr-defined]
    assert not NodeSession.unscoped.exists()


def test_challenges_are_one_use_and_expire(org_a: OrgWorld) -> None:
    node = enroll(org_a.users["admin"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {node.api_key}"}
    challenge = _post("session/begin", **auth).json()["challenge"]  # type: ignore[attr-defined]
    body = {"challenge": challenge, "sig": node.sign(protocol.b64decode(challenge))}
    assert _post("session/complete", body, **auth).status_code == 200  # type: ignore[attr-defined]
    replay = _post("session/complete", body, **auth)
    assert replay.status_code == 401  # type: ignore[attr-defined]
    late = _post("session/begin", **auth).json()["challenge"]  # type: ignore[attr-defined]
    NodeChallenge.unscoped.filter(used_at__isnull=True).update(expires_at=timezone.now())
    body = {"challenge": late, "sig": node.sign(protocol.b64decode(late))}
    assert _post("session/complete", body, **auth).status_code == 401  # type: ignore[attr-defined]


def test_bad_api_keys_and_revoked_nodes(org_a: OrgWorld) -> None:
    node = enroll(org_a.users["admin"])
    assert _post("session/begin").status_code == 401  # type: ignore[attr-defined]
    bad = {"HTTP_AUTHORIZATION": "Bearer rwk_wrong"}
    assert _post("session/begin", **bad).status_code == 401  # type: ignore[attr-defined]
    admin = api_client_for(org_a.users["admin"])
    assert (
        admin.post(f"/api/v1/fleet-nodes/{node.node_id}/revoke", {}, format="json").status_code
        == 200
    )
    auth = {"HTTP_AUTHORIZATION": f"Bearer {node.api_key}"}
    assert _post("session/begin", **auth).status_code == 403  # type: ignore[attr-defined]
    assert _post("credentials", node.credentials_body()).status_code == 403  # type: ignore[attr-defined]


def test_unconfirmed_registrations_expire(org_a: OrgWorld) -> None:
    node = enroll(org_a.users["admin"], confirm=False)
    admin = api_client_for(org_a.users["admin"])
    FleetNode.unscoped.filter(pk=node.node_id).update(expires_at=timezone.now())
    assert admin.get(f"/api/v1/fleet-nodes/{node.node_id}/").status_code == 404
    assert admin.get("/api/v1/fleet-nodes/").json()["count"] == 0
    assert enrollment.nodes_expire_unconfirmed() == 1
    assert not FleetNode.unscoped.exists()


@pytest.mark.usefixtures("isolated_cache")
def test_the_gateway_is_throttled_per_address_and_ignores_user_sessions(
    org_a: OrgWorld, settings: object
) -> None:
    settings.REST_FRAMEWORK = {  # type: ignore[attr-defined]
        **settings.REST_FRAMEWORK,  # type: ignore[attr-defined]
        "DEFAULT_THROTTLE_RATES": {"token": None, "user": None, "anon": "3/minute"},
    }
    # a signed-in browser gets no more than a node: no session auth here (and no CSRF check)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(org_a.users["owner"])
    answers = [client.post(f"{GATEWAY}/register", {}, format="json").status_code for _ in range(4)]
    assert answers == [400, 400, 400, 429]


@pytest.mark.parametrize(
    "raw",
    [b"{this is not json", b'{"challenge": "x"', b"[1, 2]", b"null", b'"s"', b"42"],
)
def test_a_malformed_session_complete_body_with_a_key_is_400(org_a: OrgWorld, raw: bytes) -> None:
    node = enroll(org_a.users["admin"])
    response = APIClient().post(
        f"{GATEWAY}/session/complete",
        data=raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {node.api_key}",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert not NodeSession.unscoped.exists()
