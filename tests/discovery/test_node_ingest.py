"""``discovery_batch`` from a node: untrusted input. Only batches of an in-flight command of
that node count; everything else is dropped, counted by reason, and nothing is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from accounts.actor import Actor
from discovery import services
from discovery.models import DiscoveredDevice, DiscoveryRun, Outcome, RunStatus
from discovery.node import batch_handle, discover_payload
from fleet.models import FleetNode, Miner, NodeStatus
from fleet.services.identity import identifier_for
from fleetnode.protocol import ProtocolError
from miners import DeviceInfo
from tests.discovery.conftest import NodeWorld, confirmed_node, node_run


def device(host: str = "127.0.5.3", port: int = 80, **extra: Any) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "scheme": "http",
        "driver": "protoos",
        "make": "Proto",
        "model": "Rig",
        "firmware": "1.8.2",
        "mac": "",
        "serial": "",
        **extra,
    }


def batch(run: DiscoveryRun, devices: list[Any], seq: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": "discovery_batch",
        "command_id": str(run.command_id),
        "batch_seq": seq,
        "devices": devices,
        **extra,
    }


def test_the_discover_payload_is_the_exact_scope(alpha: NodeWorld) -> None:
    run = node_run(alpha)
    payload = discover_payload(run)
    assert payload["addresses"] == [f"127.0.5.{i}" for i in range(1, 21)]
    assert payload["ports"] == [80, 4028]
    assert payload["node_local_subnet"] is False


def test_devices_in_scope_are_stored_attributed_and_counted(alpha: NodeWorld) -> None:
    run = node_run(alpha)
    ack = batch_handle(
        alpha.node.pk,
        batch(run, [device(mac="AA-BB-CC-00-00-01"), device("127.0.5.4", 4028, serial="S-2")]),
    )
    assert ack["type"] == "batch_ack" and ack["accepted"] == 2 and ack["dropped"] == 0
    rows = {d.host: d for d in DiscoveredDevice.unscoped.filter(run=run)}
    assert rows["127.0.5.3"].identifier == "mac:aa:bb:cc:00:00:01"
    assert rows["127.0.5.4"].identifier == "serial:S-2"
    assert all(d.node_id == alpha.node.pk for d in rows.values())
    run.refresh_from_db()
    assert (run.found, run.new, run.updated) == (2, 2, 0)


def test_a_resent_batch_never_counts_twice(alpha: NodeWorld) -> None:
    run = node_run(alpha)
    first = batch_handle(alpha.node.pk, batch(run, [device()], seq=1))
    again = batch_handle(alpha.node.pk, batch(run, [device()], seq=1))
    assert first["accepted"] == 1 and again["duplicate"] is True
    run.refresh_from_db()
    assert run.found == 1 and DiscoveredDevice.unscoped.count() == 1
    # the same device in a later batch of the same run: the same row, counted once
    batch_handle(alpha.node.pk, batch(run, [device()], seq=2))
    run.refresh_from_db()
    assert (run.found, run.new, run.updated) == (1, 1, 0)


def test_a_rescan_updates_the_same_row(alpha: NodeWorld) -> None:
    first = node_run(alpha)
    batch_handle(alpha.node.pk, batch(first, [device(serial="S-9", firmware="1.0")]))
    services.run_finish(first.pk, Outcome.OK)
    second = node_run(alpha)
    batch_handle(alpha.node.pk, batch(second, [device("127.0.5.7", serial="S-9", firmware="2.0")]))
    row = DiscoveredDevice.unscoped.get()
    assert (row.host, row.firmware, row.run_id) == ("127.0.5.7", "2.0", second.pk)
    second.refresh_from_db()
    assert (second.found, second.new, second.updated) == (1, 0, 1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (device("127.0.6.1"), "out_of_scope"),
        (device(port=8080), "out_of_scope"),
        (device(scheme="javascript:"), "malformed"),
        (device(scheme="javascript"), "malformed"),
        (device(model="x" * 10_240), "malformed"),
        (device(serial="s" * 10_240), "malformed"),
        (device(firmware="\x00"), "malformed"),
        (device(driver="evil"), "malformed"),
        (device(mac="not-a-mac"), "malformed"),
        (device(host="rig.lan"), "malformed"),
        (device(port="80"), "malformed"),
        (device(port=True), "malformed"),
        ("a string", "malformed"),
        ({"host": ["127.0.5.3"]}, "malformed"),
    ],
)
def test_bad_devices_are_dropped_counted_and_not_stored(
    alpha: NodeWorld, bad: Any, reason: str
) -> None:
    run = node_run(alpha)
    ack = batch_handle(alpha.node.pk, batch(run, [bad]))
    assert ack["accepted"] == 0 and ack["dropped"] == 1
    run.refresh_from_db()
    assert run.rejected == {reason: 1} and run.found == 0
    assert not DiscoveredDevice.unscoped.exists()


def test_over_quota_is_dropped(alpha: NodeWorld) -> None:
    # two addresses × two ports: at most four reports, however many the node sends
    run = node_run(alpha, targets=["127.0.5.1-2"])
    devices = [device(f"127.0.5.{i}", port) for port in (80, 4028) for i in (1, 2)]
    extra = [device("127.0.5.1", 80, mac=f"02:00:00:00:00:{i:02x}") for i in range(2)]
    ack = batch_handle(alpha.node.pk, batch(run, devices + extra))
    assert ack["dropped"] == 2  # accepted counts rows: one per rig, whatever its ports
    run.refresh_from_db()
    assert run.rejected == {"over_quota": 2}


def test_a_rig_answering_on_two_ports_is_not_over_quota(alpha: NodeWorld) -> None:
    """The review's case: two rigs, each on 80 and 443, scanned through a node → ok, not partial."""
    run = node_run(alpha, targets=["127.0.5.1-2"], ports=[80, 443])
    devices = [device(f"127.0.5.{i}", port) for port in (80, 443) for i in (1, 2)]
    ack = batch_handle(alpha.node.pk, batch(run, devices))
    assert ack["dropped"] == 0
    run.refresh_from_db()
    assert "over_quota" not in run.rejected


def test_non_private_results_of_a_node_local_scan_are_dropped(alpha: NodeWorld) -> None:
    run = node_run(alpha, targets=["node-local-subnet"])
    ack = batch_handle(alpha.node.pk, batch(run, [device("8.8.8.8"), device("127.0.9.9")]))
    assert ack["accepted"] == 1
    run.refresh_from_db()
    assert run.rejected == {"not_private": 1}
    assert list(DiscoveredDevice.unscoped.values_list("host", flat=True)) == ["127.0.9.9"]


def test_unknown_and_foreign_command_ids_store_nothing(alpha: NodeWorld) -> None:
    run = node_run(alpha)
    other = confirmed_node(alpha.world, "node-2")
    for node_id, command_id in (
        (alpha.node.pk, str(uuid.uuid4())),  # unknown
        (alpha.node.pk, "not-a-uuid"),
        (other.pk, str(run.command_id)),  # another node's command
    ):
        ack = batch_handle(
            node_id, {**batch(run, [device(), device("127.0.5.4")]), "command_id": command_id}
        )
        assert ack["accepted"] == 0 and ack["dropped"] == 2
    assert not DiscoveredDevice.unscoped.exists()
    run.refresh_from_db()
    assert run.found == 0
    assert FleetNode.unscoped.get(pk=alpha.node.pk).rejected_reports == 4
    assert FleetNode.unscoped.get(pk=other.pk).rejected_reports == 2


def test_a_finished_runs_command_is_unknown(alpha: NodeWorld) -> None:
    run = node_run(alpha)
    services.run_finish(run.pk, Outcome.TIMEOUT)
    assert batch_handle(alpha.node.pk, batch(run, [device()]))["accepted"] == 0
    assert not DiscoveredDevice.unscoped.exists()


@pytest.mark.parametrize(
    "frame",
    [
        {"command_id": 5, "batch_seq": 1, "devices": []},
        {"command_id": "x" * 65, "batch_seq": 1, "devices": []},
        {"command_id": "c", "batch_seq": -1, "devices": []},
        {"command_id": "c", "batch_seq": 1, "devices": {}},
    ],
)
def test_a_malformed_frame_is_a_protocol_error(alpha: NodeWorld, frame: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        batch_handle(alpha.node.pk, {"type": "discovery_batch", **frame})


def test_identity_auto_hashes_the_node_so_equal_ranges_never_merge(alpha: NodeWorld) -> None:
    other = confirmed_node(alpha.world, "node-2")
    run_a = node_run(alpha)
    run_b = node_run(NodeWorld(alpha.world, other))
    batch_handle(alpha.node.pk, batch(run_a, [device()]))
    batch_handle(other.pk, batch(run_b, [device()]))
    rows = list(DiscoveredDevice.unscoped.order_by("node_id"))
    assert len(rows) == 2 and rows[0].identifier != rows[1].identifier
    info = DeviceInfo(driver="protoos", host="127.0.5.3", port=80, make="Proto", model="Rig")
    assert rows[0].identifier == identifier_for(info, dialled_by=f"node:{alpha.node.pk}")


def test_attribution_other_node_refused_revoked_node_reclaimed(alpha: NodeWorld) -> None:
    from fleet.nodes.lifecycle import node_revoke

    other = confirmed_node(alpha.world, "node-2")
    mine = device(mac="aa:bb:cc:00:00:07")
    batch_handle(alpha.node.pk, batch(node_run(alpha), [mine]))
    run_b = node_run(NodeWorld(alpha.world, other))
    batch_handle(other.pk, batch(run_b, [mine]))
    run_b.refresh_from_db()
    assert run_b.rejected == {"attributed_to_another_node": 1}
    assert DiscoveredDevice.unscoped.get().node_id == alpha.node.pk
    node_revoke(actor=Actor.for_user(alpha.admin), node=alpha.node)
    batch_handle(other.pk, batch(run_b, [mine], seq=2))
    assert DiscoveredDevice.unscoped.get().node_id == other.pk  # reclaimed


def test_a_cloud_paired_device_is_refused_to_a_node(alpha: NodeWorld) -> None:
    mine = device(mac="aa:bb:cc:00:00:08")
    site = alpha.world.sites[0]
    Miner.unscoped.create(
        org=alpha.world.org,
        site=site,
        identifier="mac:aa:bb:cc:00:00:08",
        name="rig",
        host="127.0.5.3",
        port=80,
        driver="protoos",
    )
    run = node_run(alpha)
    # the row exists from an earlier cloud scan, linked to the cloud miner
    DiscoveredDevice.unscoped.create(
        org=alpha.world.org,
        site=site,
        identifier="mac:aa:bb:cc:00:00:08",
        host="127.0.5.3",
        port=80,
        driver="protoos",
        miner=Miner.unscoped.get(),
    )
    ack = batch_handle(alpha.node.pk, batch(run, [mine]))
    assert ack["accepted"] == 0
    run.refresh_from_db()
    assert run.rejected == {"cloud_paired": 1}
    assert DiscoveredDevice.unscoped.get().node_id is None


def test_the_run_ends_on_the_deadline(alpha: NodeWorld) -> None:
    import datetime as dt

    from django.utils import timezone

    run = node_run(alpha)
    assert services.runs_sweep() == 0
    assert services.runs_sweep(now=timezone.now() + dt.timedelta(hours=2)) == 1
    run.refresh_from_db()
    assert (run.status, run.outcome) == (RunStatus.DONE, Outcome.TIMEOUT)


def test_a_final_ack_ends_the_run_through_the_sweep(alpha: NodeWorld) -> None:
    from fleet.models import NodeCommand
    from fleet.nodes.commands import command_sign

    run = node_run(alpha)
    row, _signed = command_sign(
        node=alpha.node, kind="discover", payload={}, actor=Actor.system("t"), ttl_s=60
    )
    DiscoveryRun.unscoped.filter(pk=run.pk).update(command_id=row.command_id)
    NodeCommand.unscoped.filter(pk=row.pk).update(status="busy")
    assert services.runs_sweep() == 1
    run.refresh_from_db()
    assert run.outcome == Outcome.BUSY


def test_only_a_confirmed_node_scans(alpha: NodeWorld) -> None:
    from accounts.errors import ApplicationError

    FleetNode.unscoped.filter(pk=alpha.node.pk).update(status=NodeStatus.REVOKED)
    alpha.node.refresh_from_db()
    with pytest.raises(ApplicationError):
        node_run(alpha)
