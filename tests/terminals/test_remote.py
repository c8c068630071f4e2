"""Remote commands: the allowlist, argument validation and quoting (injection attempts), runs
on many hosts against a real sshd with per-host outcomes, bounded concurrency, the audit trail
and tenant isolation through the API."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from accounts.actor import Actor
from accounts.errors import ApplicationError, Forbidden
from accounts.models import ActivityEvent
from terminals import remote
from terminals.models import SshHost
from terminals.services.hosts import host_add
from terminals.services.remote import remote_run
from tests.conftest import OrgWorld, api_client_for
from tests.terminals.conftest import Sshd

URL = "/api/v1/terminals/commands/"
PAYLOADS = (
    "; rm -rf /",
    "x; touch {canary}",
    "$(touch {canary})",
    "`touch {canary}`",
    "' ; touch {canary} ; '",
    '" && touch {canary} #',
    "| touch {canary}",
    "> {canary}",
)


@pytest.fixture(autouse=True)
def loopback(settings: Any) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def ssh_host(world: OrgWorld, sshd: Sshd, name: str, site: int = 0, port: int = 0) -> SshHost:
    return host_add(
        actor=Actor.for_user(world.users["admin"]),
        site=world.sites[site],
        name=name,
        address="127.0.0.1",
        port=port or sshd.port,
        username="root",
        auth_method="key",
        secret=sshd.client_key,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once closed: connection refused


# --- the catalog: validation and quoting (pure) -------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_arguments_are_quoted_into_one_word(payload: str) -> None:
    _entry, line = remote.build("grep_log", {"pattern": payload, "lines": 5})
    words = shlex.split(line)
    assert words[:4] == ["grep", "-F", "-e", payload]
    assert line == f"grep -F -e {shlex.quote(payload)} /var/log/miner.log | tail -n 5"


@pytest.mark.parametrize(
    ("command", "args", "name"),
    [
        ("grep_log", {"pattern": "a\nreboot"}, "pattern"),
        ("grep_log", {"pattern": "a\rreboot"}, "pattern"),
        ("grep_log", {"pattern": "a\x00b"}, "pattern"),
        ("grep_log", {"pattern": "\x1b[2J"}, "pattern"),
        ("grep_log", {"pattern": ""}, "pattern"),
        ("grep_log", {"pattern": "x" * 201}, "pattern"),
        ("grep_log", {}, "pattern"),
        ("grep_log", {"pattern": "ok", "log": "/etc/shadow"}, "log"),
        ("fetch_logs", {"lines": "10; rm -rf /"}, "lines"),
        ("fetch_logs", {"lines": True}, "lines"),
        ("fetch_logs", {"lines": 10.5}, "lines"),
        ("fetch_logs", {"lines": 0}, "lines"),
        ("fetch_logs", {"lines": 5001}, "lines"),
        ("fetch_logs", {"lines": 5, "file": "/etc/passwd"}, "file"),
        ("ping", {"target": "-oProxyCommand=reboot"}, "target"),
        ("ping", {"target": "pool.example; reboot"}, "target"),
        ("ping", {"target": "$(reboot)"}, "target"),
        ("restart_mining", {"service": "cgminer; reboot"}, "service"),
        ("restart_mining", {}, "service"),
        ("rm", {}, "command"),
        ("uptime; reboot", {}, "command"),
    ],
)
def test_bad_arguments_are_refused(command: str, args: dict[str, Any], name: str) -> None:
    with pytest.raises(remote.ArgumentError) as refused:
        remote.build(command, args)
    assert refused.value.name == name


def test_fixed_choices_map_to_fixed_strings() -> None:
    assert remote.build("restart_mining", {"service": "bmminer"})[1] == (
        "/etc/init.d/bmminer.sh restart"
    )
    assert remote.build("fetch_logs", {})[1] == "tail -n 200 /var/log/miner.log"
    assert remote.build("ping", {"target": "10.0.0.1", "count": 2})[1] == "ping -c 2 10.0.0.1"


# --- runs against a real sshd --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_injection_attempts_run_as_literal_text(
    org_a: OrgWorld, sshd: Sshd, tmp_path: Path
) -> None:
    host = ssh_host(org_a, sshd, "rig 1")
    canary = tmp_path / "pwned"
    client = api_client_for(org_a.users["operator"])
    for payload in PAYLOADS:
        pattern = payload.format(canary=canary)
        response = client.post(
            URL + "run/",
            {"hosts": [host.pk], "command": "grep_log", "args": {"pattern": pattern}},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert shlex.split(body["line"])[3] == pattern
        (result,) = body["results"]
        assert result["status"] == "ok", result  # grep ran (the log is missing here), nothing else
        assert "miner.log" in result["output"]
    assert not canary.exists()
    for newline in ("ok\ntouch " + str(canary), "ok\rreboot"):
        response = client.post(
            URL + "run/",
            {"hosts": [host.pk], "command": "grep_log", "args": {"pattern": newline}},
            format="json",
        )
        assert response.status_code == 400
        assert "pattern" in response.json()["args"][0]
    assert not canary.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_many_hosts_per_host_outcomes_and_audit(org_a: OrgWorld, sshd: Sshd) -> None:
    good = [ssh_host(org_a, sshd, f"rig {i}", site=i % 2) for i in range(3)]
    down = ssh_host(org_a, sshd, "rig down", port=closed_port())
    client = api_client_for(org_a.users["operator"])
    response = client.post(
        URL + "run/",
        {"hosts": [h.pk for h in [*good, down]], "command": "uptime"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["line"] == "uptime"
    by_host = {r["host"]: r for r in body["results"]}
    for host in good:
        assert by_host[host.pk]["status"] == "ok"
        assert by_host[host.pk]["exit_status"] == 0
        assert "load average" in by_host[host.pk]["output"]
    assert by_host[down.pk]["status"] == "error"
    assert "Can't reach" in by_host[down.pk]["error"]
    run = ActivityEvent.unscoped.get(verb="terminal.remote_run")
    assert run.target_id == body["id"] and run.result == "failed"
    assert run.details["hosts"] == {"ok": 3, "error": 1}
    assert run.actor_user_id == org_a.users["operator"].pk
    per_host = ActivityEvent.unscoped.filter(verb="terminal.remote_host")
    assert sorted(int(e.target_id) for e in per_host) == sorted(h.pk for h in [*good, down])
    assert {e.details["run"] for e in per_host} == {body["id"]}
    assert {e.site_id for e in per_host} == {org_a.sites[0].pk, org_a.sites[1].pk}

    # a failing exit status is "failed", with the output kept
    response = client.post(
        URL + "run/",
        {"hosts": [good[0].pk], "command": "restart_mining", "args": {"service": "cgminer"}},
        format="json",
    )
    (result,) = response.json()["results"]
    assert result["status"] == "failed" and result["exit_status"] != 0
    assert "cgminer" in result["output"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrency_is_bounded_and_output_is_capped(
    org_a: OrgWorld, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = [ssh_host(org_a, sshd, f"rig {i}") for i in range(5)]
    running, most = 0, 0
    one = remote._run_one

    async def counted(host_id: int, line: str) -> remote.Outcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await one(host_id, line)
        finally:
            running -= 1

    monkeypatch.setattr(remote, "_run_one", counted)
    outcomes = async_to_sync(remote.run_on_hosts)(
        [h.pk for h in hosts], "sleep 0.5; echo done", concurrency=2
    )
    assert [o.status for o in outcomes] == ["ok"] * 5
    assert [o.output for o in outcomes] == [b"done\n"] * 5
    assert most == 2  # never more than the gate, and it did run two at once
    monkeypatch.setattr(remote, "_run_one", one)
    (big,) = async_to_sync(remote.run_on_hosts)([hosts[0].pk], "yes | head -c 300000")
    assert big.truncated and len(big.output) == remote.MAX_OUTPUT


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_command_that_hangs_times_out(
    org_a: OrgWorld, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "COMMAND_TIMEOUT", 0.5)
    host = ssh_host(org_a, sshd, "rig slow")
    (outcome,) = async_to_sync(remote.run_on_hosts)([host.pk], "sleep 30")
    assert outcome.status == "error" and "no answer within 0.5 s" in outcome.error
    assert outcome.seconds < 15


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_changed_host_key_is_refused_per_host(org_a: OrgWorld, sshd: Sshd) -> None:
    host = ssh_host(org_a, sshd, "rig 1")
    (first,) = async_to_sync(remote.run_on_hosts)([host.pk], "true")
    assert first.status == "ok"
    assert SshHost.unscoped.get(pk=host.pk).host_key  # trusted on first use
    sshd.new_host_key()
    (second,) = async_to_sync(remote.run_on_hosts)([host.pk], "true")
    assert second.status == "refused" and "host key" in second.error


# --- authorization and tenant isolation ----------------------------------------------------
@pytest.mark.django_db
def test_other_org_hosts_are_unknown_ids_and_nothing_runs(
    org_a: OrgWorld, org_b: OrgWorld, sshd: Sshd
) -> None:
    theirs = ssh_host(org_a, sshd, "alpha rig")
    ours = ssh_host(org_b, sshd, "bravo rig")
    client = api_client_for(org_b.users["owner"])
    for hosts in ([theirs.pk], [ours.pk, theirs.pk], [10**12]):
        response = client.post(URL + "run/", {"hosts": hosts, "command": "uptime"}, format="json")
        assert response.status_code == 400
        message = response.json()["hosts"][0]
        assert "alpha" not in message and "does not exist" in message
    assert not ActivityEvent.unscoped.filter(org=org_a.org, verb__startswith="terminal.remote")
    assert not ActivityEvent.unscoped.filter(verb="terminal.remote_host")


@pytest.mark.django_db
def test_without_terminal_open_nothing_runs(org_a: OrgWorld, sshd: Sshd) -> None:
    host = ssh_host(org_a, sshd, "rig 1")
    viewer = org_a.users["viewer"]
    assert api_client_for(viewer).get(URL).status_code == 403
    response = api_client_for(viewer).post(
        URL + "run/", {"hosts": [host.pk], "command": "uptime"}, format="json"
    )
    assert response.status_code == 400  # the host is invisible to them: an unknown id
    with pytest.raises(Forbidden):
        remote_run(actor=Actor.for_user(viewer), hosts=[host], command="uptime", args={})
    denied = ActivityEvent.unscoped.get(verb="terminal.remote_run")
    assert denied.result == "denied" and denied.target_id == str(host.pk)
    assert not ActivityEvent.unscoped.filter(verb="terminal.remote_host")


@pytest.mark.django_db
def test_bad_bodies_are_400_with_field_errors(org_a: OrgWorld, sshd: Sshd) -> None:
    host = ssh_host(org_a, sshd, "rig 1")
    client = api_client_for(org_a.users["operator"])
    cases: list[tuple[Any, str]] = [
        ({"hosts": [], "command": "uptime"}, "hosts"),
        ({"hosts": [host.pk], "command": "reboot"}, "command"),
        ({"hosts": [host.pk, host.pk], "command": "uptime"}, "hosts"),
        ({"hosts": [True], "command": "uptime"}, "hosts"),
        ({"hosts": "1", "command": "uptime"}, "hosts"),
        ({"hosts": [host.pk], "command": "uptime", "args": []}, "args"),
        ({"hosts": [host.pk], "command": "uptime", "args": {"x": 1}}, "args"),
        ({"hosts": [host.pk], "command": "fetch_logs", "args": {"lines": "5"}}, "args"),
    ]
    for body, field in cases:
        response = client.post(URL + "run/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    with pytest.raises(ApplicationError):
        remote_run(
            actor=Actor.for_user(org_a.users["operator"]),
            hosts=[host] * (remote.MAX_HOSTS + 1),
            command="uptime",
            args={},
        )
    assert not ActivityEvent.unscoped.filter(verb="terminal.remote_host")


@pytest.mark.django_db
def test_the_catalog_lists_every_command_with_its_arguments(org_a: OrgWorld) -> None:
    response = api_client_for(org_a.users["operator"]).get(URL)
    assert response.status_code == 200
    names = {c["name"]: c for c in response.json()}
    assert set(names) == set(remote.COMMANDS)
    lines = {p["name"]: p for p in names["fetch_logs"]["params"]}["lines"]
    assert lines == {
        "name": "lines",
        "kind": "integer",
        "help": "How many of the last lines",
        "optional": True,
        "default": 200,
        "minimum": 1,
        "maximum": 5000,
    }
    assert names["restart_mining"]["changes_state"] is True
