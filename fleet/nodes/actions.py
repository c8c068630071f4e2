"""Miner actions on node-owned miners: a signed command to the owning node, not a dial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.actor import Actor
from fleet.models import FleetNode, Miner
from fleet.nodes.commands import command_run

ACTION_TTL_S = 15  # + the reply grace stays inside a job batch's deadline (dial.CALL_TIMEOUT + 10)


@dataclass(frozen=True)
class NodeCall:
    """One action for one node-owned miner, loaded before the async batch runs."""

    node: FleetNode
    miner_id: int
    params: dict[str, Any]
    job_item_id: int | None = None


def node_call(miner: Miner, params: dict[str, Any], job_item_id: int | None = None) -> NodeCall:
    assert miner.node_id is not None
    return NodeCall(FleetNode.unscoped.get(pk=miner.node_id), miner.pk, params, job_item_id)


async def node_action(call: NodeCall, kind: str, actor: Actor) -> str:
    """Run the action through the node; '' when it went through, else the reason."""
    outcome = await command_run(
        node=call.node,
        kind=kind,
        payload={"miner_id": call.miner_id, "params": call.params},
        actor=actor,
        ttl_s=ACTION_TTL_S,
        stored_payload={"miner_id": call.miner_id, "params": sorted(call.params)},
        job_item_id=call.job_item_id,
    )
    if outcome.ok:
        return ""
    return (outcome.error or f"The fleet node answered '{outcome.status}'.")[:500]
