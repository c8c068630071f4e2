"""A discovery run through a real fleet node, end to end: daphne and a Celery worker on the
test database, the agent as its own process (``python -m fleetnode``), simulated miners on
127.x — on loopback, and in the real topology (agent and miners in a network namespace the
server can't dial into). The run finds exactly the simulated miners, attributed to the node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fleetnode.sites import LoopbackSite, NamespaceSite
from tests.fleetnode.test_e2e import (
    Agent,
    Api,
    Daphne,
    _site_id,
    enrolling,
    owner_api,
    wait_connected,
    wait_for,
)
from tests.fleetnode.test_e2e import server as server  # noqa: PLC0414 - the fixture
from tests.fleetnode.test_e2e import site as site  # noqa: PLC0414 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(280)]


@pytest.fixture(autouse=True)
def _loopback_is_a_lan(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """The simulators' 127.x stand for a LAN: the server (daphne, worker) and the agent are
    told so, as operators would list a range; set before the processes start."""
    monkeypatch.setenv("DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("FLEETNODE_DISCOVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def _enrolled_agent(server: Daphne, site: Any, tmp_path: Path) -> tuple[Api, Agent, int]:
    api = owner_api(server)
    agent = Agent(tmp_path / "node-state", tmp_path, site.prefix)
    with enrolling(agent, server, site) as (enroll, _printed, node_id, fingerprint):
        status, _ = api.call(
            "POST", f"/api/v1/fleet-nodes/{node_id}/confirm", {"fingerprint": fingerprint}
        )
        assert status == 200
        assert enroll.wait(timeout=90) == 0
    return api, agent, node_id


def test_a_run_through_the_node_finds_exactly_the_simulated_miners(
    site: LoopbackSite | NamespaceSite, server: Daphne, tmp_path: Path
) -> None:
    api, agent, node_id = _enrolled_agent(server, site, tmp_path)
    agent.run()
    try:
        logs = wait_connected(agent, server, api, node_id)
        hosts = sorted(e["host"] for e in site.inventory)
        block = hosts[0].rsplit(".", 1)[0]
        body = {
            "site": _site_id(api),
            "targets": [f"{block}.0/24"],
            "ports": [80, 443, 4028],
            "node": node_id,
        }
        status, run = api.call("POST", "/api/v1/discovery/runs/", body)
        assert status == 201, run
        done = wait_for(
            "the run done",
            lambda: (
                (r := api.call("GET", f"/api/v1/discovery/runs/{run['id']}/")[1])["status"]
                == "done"
                and r
            ),
            timeout=120,
            logs=logs,
        )
        assert done["outcome"] == "ok", (done, logs())
        assert done["probed"] == done["total"] == 254 * 3
        status, devices = api.call("GET", f"/api/v1/discovery/devices/?run={run['id']}")
        rows = devices["results"]
        assert sorted(r["host"] for r in rows) == hosts, rows
        assert all(r["node"] == node_id for r in rows)
        assert done["found"] == len(hosts) and done["rejected"] == {}
    finally:
        agent.stop()
