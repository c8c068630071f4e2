"""Node-owned miners, node telemetry, the credential scheme, revoke and key rotation — the
database side, in process (the stream itself is tested against real servers elsewhere)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import ActivityEvent
from fleet.models import CommandKey, FleetNode, Miner, MinerLatest, NodeCommand, NodeSession
from fleet.nodes import keys, lifecycle, ownership, stream
from fleet.services.polling import due_shards
from fleetnode import protocol
from miners import MinerState
from tests.conftest import OrgWorld
from tests.fleet.nodes.support import FakeNode, enroll, session_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def node(org_a: OrgWorld) -> tuple[FakeNode, FleetNode]:
    fake = enroll(org_a.users["admin"])
    row = FleetNode.unscoped.get(pk=fake.node_id)
    row.encryption_key = fake.box.public_key().public_bytes_raw()
    row.save(update_fields=["encryption_key"])
    return fake, row


def _pair(org: OrgWorld, node: FleetNode, host: str = "10.9.0.5", **extra: Any) -> Miner:
    return ownership.miner_pair_via_node(
        actor=Actor.for_user(org.users["admin"]),
        node=node,
        site=org.sites[0],
        host=host,
        port=80,
        driver="antminer",
        **extra,
    )


def _status(hashrate: float = 100.0) -> dict[str, Any]:
    return {
        "health": "ok",
        "state": "mining",
        "hashrate_ths": hashrate,
        "power_w": 3000,
        "pools": [
            {"url": "stratum+tcp://pool.example:3333", "user": "w1", "status": "active"},
            {"url": "javascript:alert(1)", "user": "evil", "status": "active"},
        ],
    }


def test_pairing_through_a_node_is_node_owned_and_never_polled_by_the_cloud(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    miner = _pair(org_a, node[1], username="root", password="s3cret")
    assert miner.node_id == node[1].pk and miner.managed_by == f"node:{node[1].pk}"
    assert "reboot" in miner.capabilities
    Miner.unscoped.filter(pk=miner.pk).update(next_poll_at="2000-01-01T00:00:00Z")
    assert miner.pk not in {m for shard in due_shards() for m in shard}


def test_cloud_and_node_pairing_refuse_each_other(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    from fleet.services import miners

    cloud = Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="serial:c1",
        name="cloud rig",
        host="10.9.0.6",
        port=80,
        driver="antminer",
    )
    with pytest.raises(ApplicationError, match="paired to the cloud; unpair it"):
        _pair(org_a, node[1], host=cloud.host)
    owned = _pair(org_a, node[1], host="10.9.0.7")
    with pytest.raises(ApplicationError, match="paired to a fleet node; unpair it"):
        miners._miner_create(  # the step of miner_add after identification
            actor=Actor.for_user(org_a.users["admin"]),
            site=org_a.sites[0],
            info=owned.device_info_for_dial(),
            health="unknown",
            name="x",
            username="",
            password=None,
        )


def test_pairing_needs_both_permissions(org_a: OrgWorld, node: tuple[FakeNode, FleetNode]) -> None:
    from accounts.errors import Forbidden

    with pytest.raises(Forbidden):
        ownership.miner_pair_via_node(
            actor=Actor.for_user(org_a.users["operator"]),
            node=node[1],
            site=org_a.sites[0],
            host="10.9.0.8",
            port=80,
            driver="antminer",
        )


def test_credentials_reach_only_their_node(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    fake, row = node
    miner = _pair(org_a, row, username="root", password="s3cret")
    commands = ownership.commands_on_hello(FleetNode.unscoped.get(pk=row.pk))
    node_key, assign = commands[-2], commands[-1]
    assert [node_key["kind"], assign["kind"]] == ["node_key", "assign_miners"]
    data_key = protocol.open_sealed(fake.box, row.pk, node_key["payload"]["sealed"])
    blob = assign["payload"]["miners"][0]["credential"]
    secret = json.loads(protocol.decrypt_credential(data_key, row.pk, miner.pk, blob))
    assert secret == {"username": "root", "password": "s3cret"}
    # another node's key (or the blob moved to another miner) opens nothing
    with pytest.raises(protocol.ProtocolError):
        protocol.decrypt_credential(bytes(32), row.pk, miner.pk, blob)
    with pytest.raises(protocol.ProtocolError):
        protocol.decrypt_credential(data_key, row.pk, miner.pk + 1, blob)
    with pytest.raises(protocol.ProtocolError):
        protocol.open_sealed(X25519PrivateKey.generate(), row.pk, node_key["payload"]["sealed"])
    # the command log keeps no secrets
    stored = NodeCommand.unscoped.get(command_id=assign["command_id"])
    assert "s3cret" not in json.dumps(stored.payload) and stored.payload["miners"] == [miner.pk]
    assert NodeCommand.unscoped.get(command_id=node_key["command_id"]).payload == {}


def test_telemetry_ingests_once_and_only_for_owned_miners(
    org_a: OrgWorld, org_b: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    row = node[1]
    mine = _pair(org_a, row)
    foreign = Miner.unscoped.create(
        org=org_b.org,
        site=org_b.sites[0],
        identifier="serial:b1",
        name="b rig",
        host="10.9.0.9",
        port=80,
        driver="antminer",
    )
    batch = {
        "type": "telemetry_batch",
        "batch_seq": 1,
        "outcomes": [
            {
                "miner_id": mine.pk,
                "started": time.time(),
                "seconds": 0.2,
                "detail": "summary",
                "status": _status(),
                "error": None,
            },
            {
                "miner_id": foreign.pk,
                "started": time.time(),
                "seconds": 0.2,
                "status": _status(),
                "error": None,
            },
            {"miner_id": mine.pk, "started": time.time(), "status": {"state": "mining"}},
            "not an object",
        ],
    }
    due = Miner.unscoped.get(pk=mine.pk).next_poll_at
    ack = stream.telemetry_handle(row.pk, batch)
    # the node polls its miners: the cloud's schedule of them is left alone
    assert Miner.unscoped.get(pk=mine.pk).next_poll_at == due
    assert ack == {
        "type": "batch_ack",
        "batch_seq": 1,
        "accepted": 1,
        "dropped": 3,
        "duplicate": False,
    }
    latest = MinerLatest.objects.get(miner=mine)
    assert latest.hashrate_ths == 100.0 and latest.state == MinerState.MINING
    assert [p["url"] for p in latest.pools] == ["stratum+tcp://pool.example:3333"]
    assert not MinerLatest.objects.filter(miner=foreign).exists()
    # a replay is acknowledged and changes nothing
    batch["outcomes"][0]["status"] = _status(hashrate=1.0)
    assert stream.telemetry_handle(row.pk, batch)["duplicate"] is True
    assert MinerLatest.objects.get(miner=mine).hashrate_ths == 100.0
    node_row = FleetNode.unscoped.get(pk=row.pk)
    assert node_row.telemetry_seq == 1 and node_row.rejected_reports == 3
    # a later batch (a backfill after an outage) is taken
    batch["batch_seq"] = 2
    batch["outcomes"] = [
        {
            "miner_id": mine.pk,
            "started": time.time(),
            "status": None,
            "error": {"kind": "unreachable", "message": "no route"},
        }
    ]
    assert stream.telemetry_handle(row.pk, batch)["accepted"] == 1
    assert MinerLatest.objects.get(miner=mine).failures == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_seq": "1", "outcomes": []},
        {"batch_seq": 1, "outcomes": {}},
        {"batch_seq": True, "outcomes": []},
        {"batch_seq": 1, "outcomes": [{}] * (stream.MAX_OUTCOMES + 1)},
    ],
)
def test_malformed_batches_are_protocol_errors(
    node: tuple[FakeNode, FleetNode], bad: dict[str, Any]
) -> None:
    with pytest.raises(protocol.ProtocolError):
        stream.telemetry_handle(node[1].pk, {"type": "telemetry_batch", **bad})


def test_revoke_is_one_audited_transaction(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    fake, row = node
    session_token(fake)
    miner = _pair(org_a, row)
    lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=row, reason="lost")
    miner.refresh_from_db()
    assert miner.node_id is None and miner.managed_by == ownership.UNASSIGNED
    assert not NodeSession.unscoped.filter(node=row, revoked_at__isnull=True).exists()
    event = ActivityEvent.unscoped.get(verb="fleetnode.revoke")
    assert event.details["released_miners"] == 1 and event.actor_user == org_a.users["admin"]
    with pytest.raises(ApplicationError):
        lifecycle.node_revoke(actor=Actor.for_user(org_a.users["admin"]), node=row)
    # a replacement node may claim the released miner
    other = enroll(org_a.users["admin"])
    claimed = _pair(org_a, FleetNode.unscoped.get(pk=other.node_id), host=miner.host)
    assert claimed.pk == miner.pk and claimed.node_id == other.node_id


def test_key_rotation_is_signed_by_the_old_key(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    row = node[1]
    old = keys.command_key_active(org_a.org.pk)
    new = lifecycle.command_key_rotate(actor=Actor.for_user(org_a.users["admin"]), org=org_a.org)
    assert CommandKey.unscoped.get(pk=old.pk).active is False and new.active
    # a node that last knew the old key gets the rotation on its next hello
    FleetNode.unscoped.filter(pk=row.pk).update(seq_hwm={old.kid: 3})
    [rotation] = ownership.rotations_missed(FleetNode.unscoped.get(pk=row.pk))
    assert rotation["kind"] == "key_rotation" and rotation["kid"] == old.kid
    assert protocol.verify_command(bytes(old.public_key), rotation)
    assert not protocol.verify_command(bytes(new.public_key), rotation)
    assert rotation["payload"]["new_kid"] == new.kid
    # and signs with the new key from then on
    assert ownership.commands_on_hello(FleetNode.unscoped.get(pk=row.pk))[-1]["kid"] == new.kid
    with pytest.raises(Exception, match="permission"):
        lifecycle.command_key_rotate(actor=Actor.for_user(org_a.users["operator"]), org=org_a.org)


def test_seq_is_a_strict_per_key_sequence(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    from fleet.nodes.commands import command_sign

    seqs = [
        command_sign(node=node[1], kind="ping", payload={}, actor=Actor.system("t"))[1]["seq"]
        for _ in range(5)
    ]
    assert seqs == sorted(set(seqs)) and len(seqs) == 5


def test_node_secrets_survive_a_data_key_rotation(
    org_a: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    from fleet import crypto
    from fleet.services.keys import data_keys_rotate

    data_key = keys.node_data_key(node[1])
    private = keys.private_key(keys.command_key_active(org_a.org.pk))
    data_keys_rotate(org=org_a.org)
    crypto.forget_keys()
    assert keys.node_data_key(FleetNode.unscoped.get(pk=node[1].pk)) == data_key
    after = keys.private_key(keys.command_key_active(org_a.org.pk))
    assert protocol.public_bytes(after) == protocol.public_bytes(private)


def test_acks_count_only_for_the_nodes_own_in_flight_commands(
    org_a: OrgWorld, org_b: OrgWorld, node: tuple[FakeNode, FleetNode]
) -> None:
    from fleet.nodes.commands import command_sign

    other = FleetNode.unscoped.get(pk=enroll(org_b.users["admin"]).node_id)
    _row, theirs = command_sign(node=other, kind="ping", payload={}, actor=Actor.system("t"))
    _row, mine = command_sign(node=node[1], kind="ping", payload={}, actor=Actor.system("t"))
    for command_id in (theirs["command_id"], "not-a-uuid"):
        ack = {"type": "ack", "command_id": command_id, "status": "ok"}
        assert stream.ack_handle(node[1].pk, ack) is None
    assert NodeCommand.unscoped.get(command_id=theirs["command_id"]).status == "sent"
    assert FleetNode.unscoped.get(pk=node[1].pk).rejected_reports == 2
    accepted = {"type": "ack", "command_id": mine["command_id"], "status": "accepted"}
    assert stream.ack_handle(node[1].pk, accepted) is not None
    final = {"type": "ack", "command_id": mine["command_id"], "status": "ok", "result": {"x": 1}}
    assert stream.ack_handle(node[1].pk, final) == (mine["command_id"], "ok", {"x": 1}, "")
    assert stream.ack_handle(node[1].pk, final) is None  # once final, a repeat is dropped
    assert NodeCommand.unscoped.get(command_id=mine["command_id"]).status == "ok"
