"""Address collisions: two sites behind two fleet nodes may both use 192.168.1.x, so a miner's
host:port is unique per node (and per org for the cloud's own miners), never across nodes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from accounts.actor import Actor
from accounts.errors import ApplicationError
from fleet.models import FleetNode, Miner
from fleet.nodes import lifecycle, ownership
from tests.conftest import OrgWorld
from tests.fleet.nodes.support import enroll, pair_antminer

pytestmark = pytest.mark.django_db

HOST = "192.168.1.10"


def _node(org: OrgWorld) -> FleetNode:
    return FleetNode.unscoped.get(pk=enroll(org.users["admin"]).node_id)


def _cloud(org: OrgWorld, identifier: str, host: str = HOST) -> Miner:
    return Miner.unscoped.create(
        org=org.org,
        site=org.sites[0],
        identifier=identifier,
        name=identifier,
        host=host,
        port=80,
        driver="antminer",
    )


def test_two_nodes_may_each_own_a_miner_at_the_same_address(org_a: OrgWorld) -> None:
    one, two = _node(org_a), _node(org_a)
    first, second = pair_antminer(org_a, one, HOST, site=0), pair_antminer(org_a, two, HOST, site=1)
    assert first.pk != second.pk and first.identifier != second.identifier
    assert (first.host, first.port) == (second.host, second.port) == (HOST, 80)
    assert (first.node_id, second.node_id) == (one.pk, two.pk)
    # each node's assignment carries only its own miner
    assert [m["id"] for m in ownership.assign_payload(one, None)["miners"]] == [first.pk]
    assert [m["id"] for m in ownership.assign_payload(two, None)["miners"]] == [second.pk]


def test_one_node_can_not_hold_an_address_twice(org_a: OrgWorld) -> None:
    node = _node(org_a)
    miner = pair_antminer(org_a, node, HOST)
    with pytest.raises(ApplicationError, match="already paired to this node"):
        pair_antminer(org_a, node, HOST, site=1)
    duplicate = Miner.unscoped.get(pk=miner.pk)
    duplicate.pk, duplicate.identifier = None, "auto:another"
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()  # the database refuses it too (miner_address_per_node)


def test_cloud_miners_stay_unique_per_org_and_refuse_node_pairing(
    org_a: OrgWorld, org_b: OrgWorld
) -> None:
    _cloud(org_a, "serial:a1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _cloud(org_a, "serial:a2")  # miner_address_unique: one cloud miner per org address
    with pytest.raises(ApplicationError, match="paired to the cloud; unpair it"):
        pair_antminer(org_a, _node(org_a), HOST)
    # another org is another network: org a's cloud miner is invisible to org b's nodes and
    # doesn't hold the address for org b's cloud
    assert pair_antminer(org_b, _node(org_b), HOST).org_id == org_b.org.pk
    assert _cloud(org_b, "serial:b1", host="192.168.1.11").org_id == org_b.org.pk
    _cloud(org_b, "serial:b2", host=HOST)  # the database allows it (the node's is per node)


def test_revoking_two_nodes_with_the_same_address_releases_both(org_a: OrgWorld) -> None:
    one, two = _node(org_a), _node(org_a)
    first, second = pair_antminer(org_a, one, HOST), pair_antminer(org_a, two, HOST, site=1)
    admin = Actor.for_user(org_a.users["admin"])
    lifecycle.node_revoke(actor=admin, node=one)
    lifecycle.node_revoke(actor=admin, node=two)  # two unassigned rows at one address: allowed
    released = Miner.unscoped.filter(pk__in=[first.pk, second.pk])
    assert {m.managed_by for m in released} == {ownership.UNASSIGNED}
    # a replacement node claims one of them (the oldest), the next claim takes the other
    spare = _node(org_a)
    assert pair_antminer(org_a, spare, HOST).pk == first.pk
    with pytest.raises(ApplicationError, match="already paired to this node"):
        pair_antminer(org_a, spare, HOST)
