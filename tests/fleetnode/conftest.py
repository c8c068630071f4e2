"""Fleet-node agent tests: an enrolled state directory and a command-signing key, no Django."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetnode import protocol
from fleetnode.state import NodeConfig, State
from tests.miners.conftest import sim_fleet

__all__ = ["sim_fleet"]  # the simulated-fleet factory fixture, shared with tests/miners

NODE_ID = 41


@dataclass
class Signer:
    """The server's side of command signing: a key, its kid and a per-key seq."""

    kid: str = "k1-test"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    seq: int = 0

    @property
    def public(self) -> bytes:
        return protocol.public_bytes(self.key)

    def command(
        self, kind: str = "ping", payload: dict[str, Any] | None = None, **over: Any
    ) -> dict[str, Any]:
        self.seq += 1
        now = int(time.time())
        body = {
            "type": "command",
            "command_id": f"cmd-{self.kid}-{self.seq}",
            "seq": self.seq,
            "kind": kind,
            "actor": "user:ops@example.com",
            "issued_at": now,
            "expires_at": now + 60,
            "payload": payload or {},
            "kid": self.kid,
        }
        body.update(over)
        return protocol.sign_command(self.key, body)

    def welcome_key(self, active: bool = True) -> dict[str, Any]:
        return {"kid": self.kid, "public_key": protocol.b64encode(self.public), "active": active}


def enrolled_state(directory: Path, server: str = "http://127.0.0.1:9") -> State:
    state = State(directory)
    key = state.identity(create=True)
    state.set_config(
        NodeConfig(server, NODE_ID, "test-node", protocol.fingerprint(protocol.public_bytes(key)))
    )
    state.set_api_key("rwk_test")
    return state


@pytest.fixture
def state(tmp_path: Path) -> State:
    return enrolled_state(tmp_path / "state")


@pytest.fixture
def signer() -> Signer:
    return Signer()


PASSWORD = "node-rig-pass-7"


@pytest.fixture
async def rigs(sim_fleet: Any) -> Any:
    """One ProtoOS rig and one Antminer on loopback (real simulators), with PASSWORD."""
    return await sim_fleet(proto=1, antminer=1, password=PASSWORD)


def assignment_for(
    inventory: list[dict[str, Any]], node_key: bytes | None, *, node_id: int = NODE_ID
) -> dict[str, Any]:
    """An ``assign_miners`` payload as the server builds it (credentials under the node key)."""
    import json

    miners = []
    for index, entry in enumerate(inventory, start=1):
        driver = "protoos" if entry["kind"] == "protoos" else "antminer"
        port = entry["ports"]["http"] if driver == "protoos" else entry["ports"]["rpc"]
        info = {"driver": driver, "host": entry["host"], "port": port, "make": "", "model": ""}
        if driver == "antminer":
            info["ports"] = {"rpc": entry["ports"]["rpc"], "web": entry["ports"]["http"]}
        else:
            info["scheme"] = "http"
        secret = json.dumps(
            {"username": "root" if driver == "antminer" else "", "password": entry["password"]}
        )
        credential = (
            protocol.encrypt_credential(node_key, node_id, index, 1, secret.encode())
            if node_key
            else None
        )
        miners.append(
            {
                "id": index,
                "host": entry["host"],
                "port": port,
                "driver": driver,
                "device_info": info,
                "credential": credential,
            }
        )
    return {"miners": miners, "poll_interval_s": 5}
