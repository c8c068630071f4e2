"""Setup for bench.control_stream: fleet nodes in the scratch database, as enrollment leaves
them, with real session tokens, and node-owned miners whose telemetry the nodes report.

Nodes are bulk-created: the rows `node_register` + `node_confirm` + `node_credentials_issue`
produce (Ed25519 identity key, fingerprint, ``confirmed``, the hash of an api key from the
same `new_token`), without their enrollment codes and activity events. Session tokens come
from the real `session_begin` / `session_complete` (a signed challenge each). Miners are
bulk-created as `miner_pair_via_node` stores them (``managed_by="node:<id>"``), with the
device info of a real identification of a simulated ProtoOS rig.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench._django import make_world
from fleetnode import protocol

PASSWORD = "bench-control-pw"


async def _real_proto_statuses() -> tuple[Any, dict[str, dict[str, Any]]]:
    """(DeviceInfo, {detail: MinerStatus.to_dict()}) of one simulated ProtoOS rig, read by our
    driver: what a node's poller puts into ``telemetry_batch`` outcomes."""
    from miners import Credentials, Detail, HttpClient, Registry, default_drivers
    from miners.sim import FleetSpec, SimFleet

    offset = 0 if os.geteuid() == 0 else 20_000
    for _attempt in range(8):
        base = f"127.{random.randint(160, 250)}.{random.randint(0, 255)}.1"
        spec = FleetSpec(proto=1, base=base, port_offset=offset, password=PASSWORD, stats_delay=0.0)
        fleet = SimFleet(spec)
        try:
            await fleet.start()
        except OSError:
            continue
        break
    else:
        raise RuntimeError("no free loopback block for the simulated miner")
    http = HttpClient()
    try:
        registry = Registry(default_drivers(include_pyasic=False, http=http))
        entry = fleet.inventory[0]
        info = await registry.identify_any(
            entry["host"], [entry["ports"]["https"]], timeout=10, credentials=None
        )
        if info is None:
            raise RuntimeError(f"{entry['host']} did not identify")
        device = registry.get(info.driver).connect(info, Credentials(password=PASSWORD), timeout=10)
        statuses = {
            str(d): (await device.status(d)).to_dict() for d in (Detail.FULL, Detail.SUMMARY)
        }
        await device.close()
        return info, statuses
    finally:
        await http.close()
        await fleet.stop()


def build_nodes(count: int, telemetry_nodes: int, miners_per_node: int) -> dict[str, Any]:
    """`count` confirmed nodes with a live session each; the first `telemetry_nodes` own
    `miners_per_node` miners. Returns what the node-fleet process needs, and timings."""
    from django.utils import timezone

    from fleet.models import FleetNode, Miner, NodeStatus
    from fleet.nodes.enrollment import API_KEY_PREFIX
    from fleet.nodes.keys import command_key_active
    from fleet.nodes.secrets import new_token
    from fleet.nodes.sessions import session_begin, session_complete
    from fleet.services.identity import identifier_for

    timings: dict[str, float] = {}
    clock = time.monotonic()
    world = make_world(sites=1, slug="bench")
    command_key_active(world.org.pk)
    now = timezone.now()
    identities = [Ed25519PrivateKey.generate() for _ in range(count)]
    api_keys, rows = [], []
    for i, identity in enumerate(identities):
        public = protocol.public_bytes(identity)
        api_key, digest = new_token(API_KEY_PREFIX, 32)
        api_keys.append(api_key)
        rows.append(
            FleetNode(
                org=world.org,
                site=world.sites[0],
                name=f"node-{i:05d}",
                hostname=f"node-{i:05d}.lan",
                agent_version="1.0.0",
                identity_key=public,
                fingerprint=protocol.fingerprint(public),
                status=NodeStatus.CONFIRMED,
                confirmed_at=now,
                api_key_hash=digest,
                api_key_issued_at=now,
            )
        )
    nodes = FleetNode.unscoped.bulk_create(rows, batch_size=1000)
    timings["nodes_s"] = time.monotonic() - clock

    clock = time.monotonic()
    tokens = []
    for identity, api_key in zip(identities, api_keys, strict=True):
        challenge = session_begin(api_key=api_key)
        sig = identity.sign(protocol.b64decode(challenge))
        token, _expires = session_complete(api_key=api_key, challenge=challenge, sig=sig)
        tokens.append(token)
    timings["sessions_s"] = time.monotonic() - clock

    clock = time.monotonic()
    info, statuses = asyncio.run(_real_proto_statuses())
    miners = []
    for n, node in enumerate(nodes[:telemetry_nodes]):
        for k in range(miners_per_node):
            i = n * miners_per_node + k
            host = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            mine = dataclasses.replace(
                info, host=host, serial=f"NODE{i:08d}", mac=None, hostname=f"rig-{i:06d}"
            )
            miners.append(
                Miner(
                    org=world.org,
                    site=world.sites[0],
                    node=node,
                    managed_by=node.managed_by,
                    identifier=identifier_for(mine, dialled_by=node.managed_by),
                    name=f"rig-{i:06d}",
                    make=mine.make,
                    model=mine.model,
                    firmware=mine.firmware or "",
                    serial=mine.serial or "",
                    hostname=mine.hostname or "",
                    host=host,
                    port=mine.port,
                    scheme=mine.scheme or "",
                    driver=mine.driver,
                    device_info=mine.to_dict(),
                )
            )
    created = Miner.unscoped.bulk_create(miners, batch_size=2000)
    owned: dict[int, list[int]] = {}
    for miner in created:
        owned.setdefault(int(miner.node_id or 0), []).append(miner.pk)
    timings["miners_s"] = time.monotonic() - clock
    boxes = [X25519PrivateKey.generate().public_key().public_bytes_raw() for _ in nodes]
    return {
        "org_id": world.org.pk,
        "nodes": [
            {
                "node_id": node.pk,
                "token": token,
                "encryption_key": protocol.b64encode(box),
                "miners": owned.get(node.pk, []),
            }
            for node, token, box in zip(nodes, tokens, boxes, strict=True)
        ],
        "statuses": statuses,
        "miners": len(created),
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
