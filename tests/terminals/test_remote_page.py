"""The remote-commands page (/terminals/commands/): the catalog's arguments as form fields, the
hosts of the caller's org only, runs through ``remote_run`` with per-host output (escaped), and
bad input as field errors with a 400 — never a run, never a 500, nothing of another org."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from accounts.models import ActivityEvent, User
from terminals import remote
from tests.conftest import OrgWorld
from tests.terminals.conftest import Sshd
from tests.terminals.matrix import matrix_host
from tests.terminals.test_remote import closed_port, ssh_host

URL = "/terminals/commands/"


@pytest.fixture(autouse=True)
def loopback(settings: Any, tmp_path: Path) -> None:
    settings.DISCOVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DATA_DIR = tmp_path


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may reach a host: any run fails the test."""

    async def refuse(host_ids: Sequence[int], line: str, **kwargs: Any) -> list[remote.Outcome]:
        raise AssertionError(f"ran {line!r} on {list(host_ids)}")

    monkeypatch.setattr(remote, "run_on_hosts", refuse)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def nothing_ran() -> bool:
    return not ActivityEvent.unscoped.filter(verb="terminal.remote_host").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["operator", "admin"])
def test_the_page_lists_the_catalog_and_only_own_org_hosts(
    org_a: OrgWorld, org_b: OrgWorld, role: str
) -> None:
    ours = matrix_host(org_a)
    matrix_host(org_b)
    page = client_for(org_a.users[role]).get(URL)
    assert page.status_code == 200
    text = page.content.decode()
    for entry in remote.COMMANDS.values():
        assert f'value="{entry.name}"' in text and entry.label in text
    assert f'name="hosts" value="{ours.pk}"' in text and ours.name in text
    assert "bravo" not in text.lower()
    assert 'href="/terminals/commands/" aria-current="page"' in text  # the sub-nav link


@pytest.mark.django_db
def test_arguments_are_rendered_from_the_specs(org_a: OrgWorld) -> None:
    operator = client_for(org_a.users["operator"])
    fetch = operator.get(URL, {"command": "fetch_logs"}).content.decode()
    assert 'type="number" name="arg_lines" value="200"' in fetch
    assert 'min="1"' in fetch and 'max="5000"' in fetch
    assert '<select name="arg_log"' in fetch and "miner (/var/log/miner.log)" in fetch
    grep = operator.get(URL, {"command": "grep_log"}).content.decode()
    assert 'type="text" name="arg_pattern"' in grep and 'maxlength="200"' in grep
    ping = operator.get(URL, {"command": "ping"}).content.decode()
    assert 'name="arg_target"' in ping and 'pattern="[A-Za-z0-9]' in ping
    restart = operator.get(URL, {"command": "restart_mining"}).content.decode()
    assert "Changes the host" in restart and "data-confirm=" in restart
    unknown = operator.get(URL, {"command": "rm -rf"})
    assert unknown.status_code == 200 and 'value="uptime" selected' in unknown.content.decode()


@pytest.mark.django_db
def test_htmx_gets_the_form_alone_with_ticked_hosts_kept(org_a: OrgWorld) -> None:
    host = matrix_host(org_a)
    response = client_for(org_a.users["operator"]).get(
        f"{URL}?command=fetch_logs&hosts={host.pk}", headers={"HX-Request": "true"}
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="run-form"' in text and "term-subnav" not in text
    assert f'value="{host.pk}" id="run-host-{host.pk}" checked' in text
    assert 'name="arg_lines"' in text


@pytest.mark.django_db
def test_no_hosts_explains_how_to_add_one(org_a: OrgWorld) -> None:
    for role, hint in (("admin", "Add host"), ("operator", "terminal:manage")):
        text = client_for(org_a.users[role]).get(URL).content.decode()
        assert "No SSH hosts to run on" in text and 'href="/terminals/hosts/"' in text
        assert hint in text
        assert "Run on the chosen hosts" not in text  # no button that could only fail


@pytest.mark.django_db
def test_without_terminal_open_the_page_is_refused(org_a: OrgWorld, no_ssh: None) -> None:
    host = matrix_host(org_a)
    viewer = client_for(org_a.users["viewer"])
    assert viewer.get(URL).status_code == 403
    assert viewer.post(URL, {"command": "uptime", "hosts": [host.pk]}).status_code == 403
    assert not ActivityEvent.unscoped.filter(verb__startswith="terminal.remote").exists()


@pytest.mark.django_db
def test_other_org_and_unknown_hosts_are_field_errors(
    org_a: OrgWorld, org_b: OrgWorld, no_ssh: None
) -> None:
    ours = matrix_host(org_a)
    theirs = matrix_host(org_b)
    operator = client_for(org_a.users["operator"])
    for hosts in ([theirs.pk], [ours.pk, theirs.pk], [10**9], ["x"], []):
        response = operator.post(URL, {"command": "uptime", "hosts": hosts})
        assert response.status_code == 400, hosts
        text = response.content.decode()
        assert '<p class="error">' in text and ("Host " in text or "Pick at least" in text)
        assert "bravo" not in text.lower()
    assert not ActivityEvent.unscoped.filter(verb__startswith="terminal.remote").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"command": "fetch_logs", "arg_lines": "0"}, "arg_lines", "greater than or equal to 1"),
        ({"command": "fetch_logs", "arg_lines": "10; reboot"}, "arg_lines", "whole number"),
        ({"command": "fetch_logs", "arg_log": "/etc/shadow"}, "arg_log", "valid choice"),
        ({"command": "grep_log", "arg_pattern": "a\nreboot"}, "arg_pattern", "One line"),
        ({"command": "grep_log", "arg_pattern": ""}, "arg_pattern", "required"),
        ({"command": "ping", "arg_target": "-oProxyCommand=x"}, "arg_target", "A hostname"),
        ({"command": "restart_mining"}, "arg_service", "required"),
        ({"command": "reboot"}, "command", "valid choice"),
    ],
)
def test_bad_arguments_are_field_errors_with_a_400(
    org_a: OrgWorld, no_ssh: None, data: dict[str, str], field: str, message: str
) -> None:
    host = matrix_host(org_a)
    response = client_for(org_a.users["operator"]).post(URL, {**data, "hosts": [host.pk]})
    assert response.status_code == 400
    form = response.context["form"]
    assert field in form.errors and message in " ".join(form.errors[field]), form.errors
    assert f'value="{host.pk}" id="run-host-{host.pk}" checked' in response.content.decode()
    assert nothing_ran()


@pytest.mark.django_db
def test_too_many_hosts_is_the_services_field_error(
    org_a: OrgWorld, no_ssh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "MAX_HOSTS", 1)
    hosts = [matrix_host(org_a, i) for i in range(2)]
    response = client_for(org_a.users["operator"]).post(
        URL, {"command": "uptime", "hosts": [h.pk for h in hosts]}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["hosts"] == ["At most 1 hosts per run."]
    assert ActivityEvent.unscoped.get(verb="terminal.remote_run").result == "failed"
    assert nothing_ran()


@pytest.mark.django_db
def test_output_and_the_line_are_escaped(org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    host = matrix_host(org_a)

    async def fake(host_ids: Sequence[int], line: str, **kwargs: Any) -> list[remote.Outcome]:
        return [remote.Outcome(h, "failed", 1, b"<script>alert(1)</script>\xff") for h in host_ids]

    monkeypatch.setattr(remote, "run_on_hosts", fake)
    response = client_for(org_a.users["operator"]).post(
        URL, {"command": "grep_log", "arg_pattern": "<b>x</b>", "hosts": [host.pk]}
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;\ufffd" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "Failed" in text and "Exit status 1" in text


@pytest.mark.django_db
def test_posts_need_the_csrf_token(org_a: OrgWorld, no_ssh: None) -> None:
    host = matrix_host(org_a)
    client = Client(enforce_csrf_checks=True)
    client.force_login(org_a.users["operator"])
    assert client.post(URL, {"command": "uptime", "hosts": [host.pk]}).status_code == 403
    assert nothing_ran()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_on_a_real_sshd_shows_each_hosts_output_and_is_audited(
    org_a: OrgWorld, sshd: Sshd
) -> None:
    host = ssh_host(org_a, sshd, "rig 1")
    down = ssh_host(org_a, sshd, "rig down", port=closed_port())
    operator = org_a.users["operator"]
    response = client_for(operator).post(URL, {"command": "uptime", "hosts": [host.pk, down.pk]})
    assert response.status_code == 200
    text = response.content.decode()
    articles = {
        pk: next(a for a in text.split("<article")[1:] if f'data-run-host="{pk}"' in a)
        for pk in (host.pk, down.pk)
    }
    ours, theirs = articles[host.pk], articles[down.pk]
    assert "rig 1" in ours and ">OK<" in ours and "Exit status 0" in ours
    assert "<pre" in ours and "load average" in ours
    assert "rig down" in theirs and ">Error<" in theirs and "Can&#x27;t reach" in theirs
    run = ActivityEvent.unscoped.get(verb="terminal.remote_run")
    assert run.actor_user_id == operator.pk and run.details["hosts"] == {"ok": 1, "error": 1}
    assert run.target_id in text
    per_host = ActivityEvent.unscoped.filter(verb="terminal.remote_host")
    assert sorted(int(e.target_id) for e in per_host) == sorted([host.pk, down.pk])
    assert {e.details["run"] for e in per_host} == {run.target_id}

    # arguments from the form reach the host quoted; a non-zero exit is "Failed" with its output
    response = client_for(operator).post(
        URL, {"command": "restart_mining", "arg_service": "cgminer", "hosts": [host.pk]}
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "/etc/init.d/cgminer restart" in text and ">Failed<" in text and "cgminer" in text
    restart = ActivityEvent.unscoped.filter(verb="terminal.remote_run").latest("pk")
    assert restart.details["args"] == {"service": "cgminer"}
