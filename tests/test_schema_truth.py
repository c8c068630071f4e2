"""The OpenAPI schema is true where a schemathesis run found it lying ("schema-valid request
rejected"): every request valid by the schema is accepted, and each rule the API enforces is in
the schema.

- Action bodies (per miner and ``POST /jobs/`` ``params``) are closed objects with their
  cross-field rules: exactly one of ``watts``/``mode``; ``manual`` cooling needs a speed.
- ``POST /jobs/``: ``params`` is the chosen kind's body; ``miners`` (one or more) or
  ``filter``, not both.
- ``POST /terminals/commands/run/``: one to ``MAX_HOSTS`` hosts.
- Miner ``host`` and SSH host ``address``: an IP address (never a name), IPv6 at most 39
  characters.
- Node-gateway keys and signatures: standard padded base64 of exactly their bytes.
- ``page`` with ``cursor``: the cursor wins, ``page`` is ignored (both documented).

Each rule is checked three ways: it is in the schema; bodies generated from the schema (by
schemathesis, as the independent checkers do) pass the real cleaners; and bodies the schema
refuses are refused by the API too.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft7Validator
from rest_framework import serializers
from schemathesis.core import NotSet

from accounts.actor import Actor
from fleet.actions import ACTIONS, WORKER_PATTERN, ActionError
from fleet.api.serializers import ACTION_BODIES
from fleet.models import Miner
from fleet.services.jobs import job_create
from fleetnode import protocol
from miners.types import Capability
from terminals import remote
from tests.conftest import OrgWorld, api_client_for

ACTION_PATH = "/api/v1/miners/{id}/actions/%s/"
EXAMPLES = 150


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    loaded: dict[str, Any] = json.loads(OpenApiJsonRenderer().render(schema))
    return loaded


def request_schema(openapi: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    body = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = resolved(openapi, body["schema"])
    return schema


def resolved(openapi: dict[str, Any], node: Any) -> Any:
    """``node`` with its ``$ref``s inlined, as plain JSON Schema (``nullable`` → ``null``)."""
    if isinstance(node, list):
        return [resolved(openapi, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return resolved(openapi, copy.deepcopy(openapi["components"]["schemas"][name]))
    out = {key: resolved(openapi, value) for key, value in node.items()}
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def is_valid(openapi: dict[str, Any], path: str, body: Any) -> bool:
    validator = Draft7Validator(
        request_schema(openapi, path), format_checker=Draft7Validator.FORMAT_CHECKER
    )
    return bool(validator.is_valid(body))


def generated_bodies(openapi: dict[str, Any], path: str, check: Callable[[Any], None]) -> None:
    """``check`` every body schemathesis generates for ``POST path`` (schema-valid ones)."""
    operation = schemathesis.openapi.from_dict(openapi)[path]["POST"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        # no body (when the schema lets it be left out) reaches the cleaners as {}
        check({} if isinstance(case.body, NotSet) else case.body)

    run()


def accepted(kind: str, body: Any) -> bool:
    try:
        ACTIONS[kind].clean(body)
    except ActionError:
        return False
    return True


# --- the schema says it ---------------------------------------------------------------------
def test_action_bodies_are_closed_with_their_rules(openapi: dict[str, Any]) -> None:
    for kind, body in ACTION_BODIES.items():
        operation = openapi["paths"][ACTION_PATH % kind]["post"]
        if body is None:
            assert "requestBody" not in operation, kind
            continue
        schema = request_schema(openapi, ACTION_PATH % kind)
        assert schema["additionalProperties"] is False, kind
    pool = request_schema(openapi, ACTION_PATH % "set_pools")["properties"]["pools"]["items"]
    assert pool["additionalProperties"] is False and "pattern" in pool["properties"]["user"]
    power = request_schema(openapi, ACTION_PATH % "set_power_target")
    assert (power["minProperties"], power["maxProperties"]) == (1, 1)
    cooling = request_schema(openapi, ACTION_PATH % "set_cooling")
    manual = next(b for b in cooling["anyOf"] if b.get("required") == ["speed_percent"])
    assert manual["properties"]["mode"] == {"allOf": [{"enum": ["manual"]}]}


def test_a_jobs_params_are_the_body_of_its_kind(openapi: dict[str, Any]) -> None:
    schema = request_schema(openapi, "/api/v1/jobs/")
    kinds, selection = (rule["oneOf"] for rule in schema["allOf"])
    by_kind = {b["properties"]["kind"]["allOf"][0]["enum"][0]: b for b in kinds}
    assert set(by_kind) == set(ACTIONS)
    assert by_kind["reboot"]["properties"]["params"] == {"type": "object", "maxProperties": 0}
    assert by_kind["set_cooling"]["required"] == ["params"]
    assert by_kind["set_cooling"]["properties"]["params"]["additionalProperties"] is False
    assert selection == [{"required": ["miners"]}, {"required": ["filter"]}]
    assert schema["properties"]["miners"]["minItems"] == 1


def test_remote_runs_say_how_many_hosts(openapi: dict[str, Any]) -> None:
    hosts = request_schema(openapi, "/api/v1/terminals/commands/run/")["properties"]["hosts"]
    assert (hosts["minItems"], hosts["maxItems"]) == (1, remote.MAX_HOSTS)


def test_addresses_are_ip_addresses(openapi: dict[str, Any]) -> None:
    ip = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6", "maxLength": 39}]}
    fields = [
        request_schema(openapi, "/api/v1/miners/")["properties"]["host"],
        request_schema(openapi, "/api/v1/terminals/hosts/")["properties"]["address"],
        request_schema(openapi, "/api/v1/terminals/hosts/{id}/", "patch")["properties"]["address"],
    ]
    for field in fields:
        assert {key: field[key] for key in ip} == ip
        assert "DISCOVERY_ALLOWED_NETWORKS" in field["description"]


def test_gateway_base64_fields_pin_their_bytes(openapi: dict[str, Any]) -> None:
    register = request_schema(openapi, "/api/v1/node-gateway/register/")["properties"]
    assert register["identity_key"]["pattern"] == "^[A-Za-z0-9+/]{40}[A-Za-z0-9+/]{3}=$"
    assert register["identity_key"]["maxLength"] == 44
    assert register["proof"]["maxLength"] == 88
    for path in ("/api/v1/node-gateway/credentials/", "/api/v1/node-gateway/session/complete/"):
        sig = request_schema(openapi, path)["properties"]["sig"]
        assert sig["pattern"] == "^[A-Za-z0-9+/]{84}[A-Za-z0-9+/]{2}==$", path


def test_page_and_cursor_say_which_wins(openapi: dict[str, Any]) -> None:
    for path in ("/api/v1/miners/", "/api/v1/jobs/"):
        params = {p["name"]: p for p in openapi["paths"][path]["get"]["parameters"]}
        assert "Ignored when `cursor` is given" in params["page"]["description"], path
        assert "the cursor wins" in params["cursor"]["description"], path


# --- what the schema generates, the API takes -----------------------------------------------
@pytest.mark.parametrize("kind", [k for k, body in ACTION_BODIES.items() if body is not None])
def test_generated_action_bodies_pass_the_cleaner(openapi: dict[str, Any], kind: str) -> None:
    def check(body: Any) -> None:
        ACTIONS[kind].clean(body)  # an ActionError fails the test, naming the body

    generated_bodies(openapi, ACTION_PATH % kind, check)


def test_generated_jobs_pass_the_cleaner(openapi: dict[str, Any]) -> None:
    def check(body: Any) -> None:
        ACTIONS[body["kind"]].clean(body.get("params", {}))
        assert ("miners" in body) != ("filter" in body), body
        assert body.get("miners", [1]), body

    generated_bodies(openapi, "/api/v1/jobs/", check)


def test_generated_addresses_are_ip_addresses(openapi: dict[str, Any]) -> None:
    field = serializers.IPAddressField()

    def check(body: Any) -> None:
        field.run_validation(body["host"])

    generated_bodies(openapi, "/api/v1/miners/", check)


def test_generated_base64_decodes_to_its_bytes(openapi: dict[str, Any]) -> None:
    def check(body: Any) -> None:
        protocol.b64decode(body["identity_key"], length=32)
        protocol.b64decode(body["proof"], length=64)

    generated_bodies(openapi, "/api/v1/node-gateway/register/", check)


# --- what the schema refuses, the API refuses -----------------------------------------------
def test_the_worker_pattern_is_the_cleaners_rule() -> None:
    """Every string of up to 6 characters over braces, word characters of a key, blanks and
    a newline: the schema's pattern and the cleaner agree on each."""
    pattern = re.compile(WORKER_PATTERN)
    pool = {"url": "stratum+tcp://p:3333"}
    for size in range(7):
        for chars in itertools.product("{}mac -\n", repeat=size):
            user = "".join(chars)
            took = accepted("set_pools", {"pools": [{**pool, "user": user}]})
            assert bool(pattern.search(user)) == took, repr(user)


REFUSED_BODIES = [
    ("set_cooling", {"": None, "mode": "off"}),
    ("set_cooling", {"mode": "manual"}),
    ("set_cooling", {"mode": "manual", "speed_percent": None}),
    ("set_power_target", {}),
    ("set_power_target", {"watts": 3000, "mode": "efficiency"}),
    ("blink", {"on": True, "colour": "red"}),
    ("set_pools", {"pools": [{"url": "stratum+tcp://p:3333", "user": " "}]}),
    ("set_pools", {"pools": [{"url": "stratum+tcp://p:3333", "user": "{site}.{rig}"}]}),
    ("set_pools", {"pools": [{"url": "stratum+tcp://p:3333", "user": "w", "x": 1}]}),
]
ACCEPTED_BODIES = [
    ("set_cooling", {"mode": "manual", "speed_percent": 40}),
    ("set_cooling", {"mode": "auto", "speed_percent": None}),
    ("set_power_target", {"mode": "efficiency"}),
    ("set_pools", {"pools": [{"url": "stratum+tcp://p:3333", "user": "{site}.{{name}"}]}),
]


@pytest.mark.parametrize(("kind", "body"), REFUSED_BODIES)
def test_the_schema_and_the_cleaner_refuse_alike(
    openapi: dict[str, Any], kind: str, body: dict[str, Any]
) -> None:
    assert not is_valid(openapi, ACTION_PATH % kind, body)
    assert not accepted(kind, body)


@pytest.mark.parametrize(("kind", "body"), ACCEPTED_BODIES)
def test_the_schema_and_the_cleaner_accept_alike(
    openapi: dict[str, Any], kind: str, body: dict[str, Any]
) -> None:
    assert is_valid(openapi, ACTION_PATH % kind, body)
    assert accepted(kind, body)


@pytest.mark.parametrize(
    "bad",
    ["A" * 44, "A" * 43 + "=\n", "-" * 43 + "=", "A" * 42 + "==", " " + "A" * 42 + "=", "A" * 40],
)
def test_non_standard_base64_is_refused_by_both(openapi: dict[str, Any], bad: str) -> None:
    body = {"code": "c", "name": "n", "agent_version": "1", "identity_key": bad, "proof": "x"}
    assert not Draft7Validator(
        request_schema(openapi, "/api/v1/node-gateway/register/")["properties"]["identity_key"]
    ).is_valid(bad)
    with pytest.raises(protocol.ProtocolError):
        protocol.b64decode(body["identity_key"], length=32)


# --- through the API ------------------------------------------------------------------------
@pytest.fixture
def rig(org_a: OrgWorld) -> Miner:
    return Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="serial:truth",
        name="truth",
        host="10.9.0.1",
        port=80,
        driver="protoos",
        capabilities=[str(c) for c in Capability],
    )


def test_unknown_keys_and_missing_choices_are_400(org_a: OrgWorld, rig: Miner) -> None:
    owner = api_client_for(org_a.users["owner"])
    url = f"/api/v1/miners/{rig.pk}/actions/%s/"
    unknown = owner.post(url % "set_cooling", {"": None, "mode": "off"}, format="json")
    assert unknown.status_code == 400 and unknown.json()[""] == ["Not a parameter of this action."]
    assert owner.post(url % "set_power_target", {}, format="json").status_code == 400
    both = owner.post(
        url % "set_power_target", {"watts": 3000, "mode": "efficiency"}, format="json"
    )
    assert both.status_code == 400
    fine = owner.post(url % "set_cooling", {"mode": "off"}, format="json")
    assert fine.status_code == 202, fine.content


def test_a_job_names_its_miners_one_way_with_its_kinds_params(org_a: OrgWorld, rig: Miner) -> None:
    owner = api_client_for(org_a.users["owner"])
    base = {"kind": "reboot", "miners": [rig.pk]}
    assert (
        owner.post("/api/v1/jobs/", {**base, "params": {"x": 1}}, format="json").status_code == 400
    )
    both = {**base, "filter": {"site": org_a.sites[0].pk}}
    assert owner.post("/api/v1/jobs/", both, format="json").status_code == 400
    none = {"kind": "reboot", "miners": []}
    assert owner.post("/api/v1/jobs/", none, format="json").status_code == 400
    assert owner.post("/api/v1/jobs/", base, format="json").status_code == 202


def test_page_with_cursor_is_the_cursor_page(org_a: OrgWorld, rig: Miner) -> None:
    Miner.unscoped.create(
        org=org_a.org,
        site=org_a.sites[0],
        identifier="serial:t2",
        name="t2",
        host="10.9.0.2",
        port=80,
        driver="protoos",
    )
    job_create(actor=Actor.system("tests"), org=org_a.org, kind="reboot", params={}, miners=[rig])
    client = api_client_for(org_a.users["owner"])
    for path in ("/api/v1/miners/", "/api/v1/jobs/"):
        first = client.get(path, {"cursor": "", "page_size": "1"}).json()
        token = parse_qs(urlsplit(first["next"]).query)["cursor"][0] if first["next"] else ""
        alone = client.get(path, {"cursor": token, "page_size": "1"})
        with_page = client.get(path, {"cursor": token, "page": "7", "page_size": "1"})
        assert with_page.status_code == 200, (path, with_page.content)
        assert with_page.json() == alone.json() and "count" not in with_page.json()
        assert client.get(path, {"cursor": "", "page": "x"}).status_code == 200


def test_host_names_are_not_addresses(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    miner = owner.post(
        "/api/v1/miners/", {"site": org_a.sites[0].pk, "host": "rig.local"}, format="json"
    )
    assert miner.status_code == 400 and "host" in miner.json()
    host = {
        "site": org_a.sites[0].pk,
        "name": "jump",
        "address": "ssh.example.com",
        "username": "root",
        "auth_method": "password",
        "secret": "pw",
    }
    ssh = owner.post("/api/v1/terminals/hosts/", host, format="json")
    assert ssh.status_code == 400 and "address" in ssh.json()


def test_a_remote_run_needs_a_host(org_a: OrgWorld) -> None:
    owner = api_client_for(org_a.users["owner"])
    empty = owner.post(
        "/api/v1/terminals/commands/run/", {"command": "uptime", "hosts": []}, format="json"
    )
    assert empty.status_code == 400 and "hosts" in empty.json()


def test_the_drivers_are_the_servers(openapi: dict[str, Any]) -> None:
    from fleet import dial

    driver = request_schema(openapi, "/api/v1/miners/")["properties"]["driver"]
    assert sorted(driver["enum"]) == sorted(dial.driver_names())


def test_a_job_interval_is_a_finite_number(org_a: OrgWorld, rig: Miner) -> None:
    """``false`` is no interval (the schema says number; DRF would take it as 0)."""
    owner = api_client_for(org_a.users["owner"])
    base = {"kind": "reboot", "miners": [rig.pk]}
    for bad in (False, True, "nan", "inf"):
        response = owner.post("/api/v1/jobs/", {**base, "interval_s": bad}, format="json")
        assert response.status_code == 400 and "interval_s" in response.json(), bad
    fine = owner.post("/api/v1/jobs/", {**base, "interval_s": 1.5}, format="json")
    assert fine.status_code == 202, fine.content
