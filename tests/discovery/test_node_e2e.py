"""A discovery run through a real fleet node, end to end: daphne and a Celery worker on the
test database, the agent as its own process (``python -m fleetnode``), simulated miners on
127.x — on loopback, and in the real topology (agent and miners in a network namespace the
server can't dial into). The run finds exactly the simulated miners, attributed to the node.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.fleetnode.sites import LoopbackSite, NamespaceSite
from tests.fleetnode.test_e2e import ROOT, Agent, Api, Daphne, _last_line, _site_id, wait_for
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
    for command, options in (
        ("create_org", {"name": "Node Org", "slug": "node-org"}),
        ("create_site", {"org": "node-org", "name": "Remote", "slug": "remote"}),
        (
            "create_user",
            {
                "email": "owner@node.example",
                "password": "pass-Word-123456",
                "org": "node-org",
                "role": "owner",
            },
        ),
    ):
        call_command(command, stdout=io.StringIO(), **options)
    api = Api(server.base, _last_line("create_api_token", email="owner@node.example"))
    agent = Agent(tmp_path / "node-state", tmp_path, site.prefix)
    enroll = subprocess.Popen(
        agent.command(
            "enroll",
            "--server",
            server.base,
            "--code",
            _last_line("create_enrollment_code", org="node-org"),
            "--name",
            "site-gw",
            *site.enroll_args,
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert enroll.stdout is not None
        printed = ""
        while "Waiting for confirmation" not in printed:
            line = enroll.stdout.readline()
            assert line, f"enroll ended early:\n{printed}"
            printed += line
        node_id = int(re.search(r"Node id:\s+(\d+)", printed).group(1))  # type: ignore[union-attr]
        fingerprint = re.search(r"Fingerprint:\s+([0-9a-f]{16})", printed).group(1)  # type: ignore[union-attr]
        status, _ = api.call(
            "POST", f"/api/v1/fleet-nodes/{node_id}/confirm", {"fingerprint": fingerprint}
        )
        assert status == 200
        assert enroll.wait(timeout=90) == 0
    finally:
        if enroll.poll() is None:
            enroll.kill()
    return api, agent, node_id


def test_a_run_through_the_node_finds_exactly_the_simulated_miners(
    site: LoopbackSite | NamespaceSite, server: Daphne, tmp_path: Path
) -> None:
    api, agent, node_id = _enrolled_agent(server, site, tmp_path)
    agent.run()
    try:
        logs = lambda: agent.logs() + "\n--- server ---\n" + server.logs()  # noqa: E731
        wait_for(
            "node connected",
            lambda: api.call("GET", f"/api/v1/fleet-nodes/{node_id}/")[1].get("connected"),
            logs=logs,
        )
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
