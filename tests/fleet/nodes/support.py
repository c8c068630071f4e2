"""A fleet node as tests play it: its keys and the enrollment and session REST steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.models import User
from fleet.models import FleetNode, Miner
from fleet.nodes import ownership
from fleetnode import protocol
from tests.conftest import OrgWorld

GATEWAY = "/api/v1/node-gateway"


@dataclass
class FakeNode:
    identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    box: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    node_id: int = 0
    api_key: str = ""

    @property
    def public(self) -> bytes:
        return protocol.public_bytes(self.identity)

    @property
    def fingerprint(self) -> str:
        return protocol.fingerprint(self.public)

    def sign(self, data: bytes) -> str:
        return protocol.b64encode(self.identity.sign(data))

    def register_body(self, code: str, name: str = "node-1") -> dict[str, Any]:
        return {
            "code": code,
            "name": name,
            "hostname": f"{name}.lan",
            "agent_version": "1.0.0",
            "identity_key": protocol.b64encode(self.public),
            "proof": self.sign(code.encode()),
        }

    def credentials_body(self, ts: int | None = None) -> dict[str, Any]:
        ts = int(time.time()) if ts is None else ts
        return {
            "node_id": self.node_id,
            "ts": ts,
            "sig": self.sign(f"{self.node_id}|{ts}".encode()),
        }

    def hello(self, **extra: Any) -> dict[str, Any]:
        return {
            "type": "hello",
            "node_id": self.node_id,
            "agent_version": "1.0.0",
            "encryption_key": protocol.b64encode(self.box.public_key().public_bytes_raw()),
            "seq_hwm": {},
            "buffered": 0,
            **extra,
        }


def new_code(admin: User, **body: Any) -> str:
    client = APIClient()
    client.force_authenticate(admin)
    response = client.post("/api/v1/fleet-nodes/enrollment-codes/", body, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["code"])


def enroll(admin: User, node: FakeNode | None = None, *, confirm: bool = True) -> FakeNode:
    """Code → register → (confirm → api key): the node as the agent leaves it."""
    node = node or FakeNode()
    anon = APIClient()
    response = anon.post(f"{GATEWAY}/register", node.register_body(new_code(admin)), format="json")
    assert response.status_code == 201, (response.status_code, response.content)
    node.node_id = response.json()["node_id"]
    if confirm:
        client = APIClient()
        client.force_authenticate(admin)
        response = client.post(
            f"/api/v1/fleet-nodes/{node.node_id}/confirm",
            {"fingerprint": node.fingerprint},
            format="json",
        )
        assert response.status_code == 200, response.content
        response = anon.post(f"{GATEWAY}/credentials", node.credentials_body(), format="json")
        assert response.status_code == 200, response.content
        node.api_key = response.json()["api_key"]
    return node


def session_token(node: FakeNode, client: APIClient | None = None) -> str:
    client = client or APIClient()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {node.api_key}"}
    response = client.post(f"{GATEWAY}/session/begin", **auth)
    assert response.status_code == 200, response.content
    challenge = response.json()["challenge"]
    body = {"challenge": challenge, "sig": node.sign(protocol.b64decode(challenge))}
    response = client.post(f"{GATEWAY}/session/complete", body, format="json", **auth)
    assert response.status_code == 200, response.content
    return str(response.json()["session_token"])


def pair_antminer(org: OrgWorld, node: FleetNode, host: str, site: int = 0) -> Miner:
    """The org's admin pairs an Antminer at ``host:80`` to ``node``, on the org's site
    number ``site``."""
    return ownership.miner_pair_via_node(
        actor=Actor.for_user(org.users["admin"]),
        node=node,
        site=org.sites[site],
        host=host,
        port=80,
        driver="antminer",
    )
