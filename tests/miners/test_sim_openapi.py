"""Real simulator responses validated against the response schemas of the ProtoOS spec (vendored in specs/).

Schemas are taken from the spec's own path table (operation -> status -> schema), `$ref`s are
resolved against its components, OpenAPI 3.0 `nullable` is rewritten to JSON Schema, and objects
are made strict (no undeclared properties) so a misspelt key in the simulator fails here.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from miners.sim import GroupSpec

SPEC_FILE = Path(__file__).resolve().parents[2] / "specs/protoos-mdk-api-1.8.2.json"
PW = "s3cretpw!"
SV2_KEY = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 timestamps (jsonschema only checks them with an optional extra installed)."""
    if isinstance(value, str):
        if "T" not in value:
            raise ValueError("no time part")
        datetime.datetime.fromisoformat(value)
    return True


SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_SINGLE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def normalise(schema: Any, strict: bool) -> Any:
    """OpenAPI schema object -> JSON Schema 2020-12 (nullable handled, optionally strict)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: normalise(sub, strict) for name, sub in out[key].items()}
    for key in SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [normalise(sub, strict) for sub in out[key]]
    for key in SCHEMA_SINGLE:
        if isinstance(out.get(key), dict):
            out[key] = normalise(out[key], strict)
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components = {
            "schemas": {
                n: normalise(s, strict=True) for n, s in spec["components"]["schemas"].items()
            }
        }

    def schema(self, template: str, method: str, status: int) -> dict[str, Any]:
        response = self.spec["paths"][template][method.lower()]["responses"][str(status)]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return response["content"]["application/json"]["schema"]

    def validate(self, instance: Any, schema: dict[str, Any]) -> list[str]:
        root = {**normalise(schema, strict=True), "components": self.components}
        validator = jsonschema.Draft202012Validator(root, format_checker=FORMATS)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def error_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(json.loads(SPEC_FILE.read_text()))


def test_nullable_is_rewritten():
    schema = {"type": "object", "properties": {"a": {"type": "number", "nullable": True},
                                                "b": {"$ref": "#/x", "nullable": True}}}  # fmt: skip
    out = normalise(schema, strict=True)
    assert out["properties"]["a"]["type"] == ["number", "null"]
    assert out["properties"]["b"] == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}
    assert out["additionalProperties"] is False


async def test_core_endpoints_match_the_spec(sim_fleet, proto, contract):
    fleet = await sim_fleet(
        groups=[GroupSpec("protoos", 2, password=PW), GroupSpec("protoos", 1, password=None)]
    )
    main, faulty, factory = (proto(entry) for entry in fleet.inventory)
    problems: list[str] = []

    async def check(client, method, path, template, status, body=None, *, auth=True, error=False):
        got, payload = await client.call(method, path, json=body, auth=auth)
        if got != status:
            problems.append(f"{method} {path}: status {got}, expected {status}: {payload}")
            return payload
        schema = contract.error_schema() if error else contract.schema(template, method, status)
        for problem in contract.validate(payload, schema):
            problems.append(f"{method} {path} ({status}): {problem}")
        return payload

    status, tokens = await main.call("POST", "/api/v1/auth/login", json={"password": PW})
    problems += contract.validate(tokens, contract.schema("/api/v1/auth/login", "POST", 200))
    main.token = tokens["access_token"]
    await check(main, "POST", "/api/v1/auth/refresh", "/api/v1/auth/refresh", 200,
                {"refresh_token": tokens["refresh_token"]}, auth=False)  # fmt: skip
    await main.login()
    for path in ("/system", "/system/status", "/pairing/info", "/network", "/hardware",
                 "/hashboards", "/hardware/psus", "/power-supplies", "/system/ssh",
                 "/system/telemetry"):  # fmt: skip
        await check(main, "GET", "/api/v1" + path, "/api/v1" + path, 200, auth=False)
    for path in ("/mining", "/mining/target", "/pools", "/cooling", "/errors"):
        await check(main, "GET", "/api/v1" + path, "/api/v1" + path, 200)
    await check(main, "GET", "/api/v1/pools/0", "/api/v1/pools/{id}", 200)
    await check(main, "GET", "/api/v1/telemetry?level=miner,hashboard,psu,asic",
                "/api/v1/telemetry", 200)  # fmt: skip
    await check(
        main, "GET", "/api/v1/system/logs?lines=20&source=miner_sw", "/api/v1/system/logs", 200
    )
    hb_sn = (await main.call("GET", "/api/v1/hashboards", auth=False))[1]["hashboards-info"][0][
        "hb_sn"
    ]
    await check(main, "GET", f"/api/v1/hashboards/{hb_sn}", "/api/v1/hashboards/{hb_sn}", 200)
    await check(main, "GET", f"/api/v1/hashboards/{hb_sn}/5",
                "/api/v1/hashboards/{hb_sn}/{asic_id}", 200)  # fmt: skip
    for metric in ("hashrate", "temperature", "power", "efficiency"):
        await check(main, "GET", f"/api/v1/{metric}?duration=24h", f"/api/v1/{metric}", 200)
        await check(main, "GET", f"/api/v1/{metric}/{hb_sn}", f"/api/v1/{metric}/{{hb_sn}}", 200)
    await check(main, "PUT", "/api/v1/mining/target", "/api/v1/mining/target", 200,
                {"power_target_watts": 3000, "performance_mode": "Efficiency"})  # fmt: skip
    await check(main, "PUT", "/api/v1/cooling", "/api/v1/cooling", 200,
                {"mode": "Manual", "speed_percentage": 80})  # fmt: skip
    await check(main, "PUT", "/api/v1/cooling", "/api/v1/cooling", 501, {"mode": "Off"})
    pools = [
        {"url": "stratum+tcp://a.example:3333", "username": "u", "priority": 0},
        {"url": "stratum2+tcp://b.example:3336", "username": "u", "priority": 1,
         "v2_authority_pubkey": SV2_KEY},
    ]  # fmt: skip
    await check(main, "POST", "/api/v1/pools", "/api/v1/pools", 200, pools)
    await check(main, "GET", "/api/v1/pools", "/api/v1/pools", 200)
    keyless = [{k: v for k, v in pools[1].items() if k != "v2_authority_pubkey"}]
    await check(main, "POST", "/api/v1/pools", "", 422, keyless, error=True)
    await check(main, "POST", "/api/v1/pools", "/api/v1/pools", 200, pools)
    await check(main, "PUT", "/api/v1/pools/0", "/api/v1/pools/{id}", 200, {"name": "A"})
    await check(main, "POST", "/api/v1/pools/test-connection", "/api/v1/pools/test-connection",
                200, {"url": "stratum+tcp://a.example:3333"})  # fmt: skip
    for path in ("/mining/stop", "/mining/start", "/system/locate?led_on_time=30"):
        await check(main, "POST", "/api/v1" + path, "/api/v1" + path.split("?")[0], 202)
    await check(main, "POST", "/api/v1/auth/logout", "/api/v1/auth/logout", 200)

    # Error bodies follow firmware ({"error": {code, message}}), the spec's ErrorResponse.
    await check(main, "GET", "/api/v1/mining", "", 401, error=True)
    await faulty.login()
    await check(
        faulty, "PUT", "/api/v1/mining/target", "", 422, {"power_target_watts": 1}, error=True
    )
    for kind in ("overheat", "dead_board", "dead_pool", "psu_fault"):
        fleet.faults.set(faulty.entry["host"], kind)
    errors = await check(faulty, "GET", "/api/v1/errors", "/api/v1/errors", 200)
    assert len(errors) >= 4 and "psu" in {e["source"] for e in errors}
    await check(faulty, "GET", "/api/v1/power-supplies", "/api/v1/power-supplies", 200,
                auth=False)  # fmt: skip
    await check(faulty, "GET", "/api/v1/mining", "/api/v1/mining", 200)
    await check(faulty, "GET", f"/api/v1/hashboards/{faulty_board(fleet, faulty)}",
                "/api/v1/hashboards/{hb_sn}", 200)  # fmt: skip
    await check(faulty, "POST", "/api/v1/system/reboot", "/api/v1/system/reboot", 202)
    await factory.login("proto")
    await check(factory, "POST", "/api/v1/mining/stop", "", 403, error=True)
    await check(factory, "PUT", "/api/v1/auth/password", "/api/v1/auth/password", 200,
                {"password": "first-pass"}, auth=False)  # fmt: skip
    await check(factory, "PUT", "/api/v1/auth/password", "", 403, {"password": "again-pass"},
                auth=False, error=True)  # fmt: skip
    assert not problems, "\n".join(problems)


def faulty_board(fleet, client) -> str:
    return fleet.miner(client.entry["host"]).board_serial(0)


def _without(body: Any, path: tuple[str, ...]) -> tuple[Any, list[Any]]:
    """`body` minus the key at `path` ("*" walks a list), and the values removed."""
    removed: list[Any] = []

    def walk(node: Any, rest: tuple[str, ...]) -> None:
        if not rest:
            return
        head, tail = rest[0], rest[1:]
        if head == "*":
            for item in node if isinstance(node, list) else []:
                walk(item, tail)
        elif isinstance(node, dict) and head in node:
            if tail:
                walk(node[head], tail)
            else:
                removed.append(node.pop(head))

    copy = json.loads(json.dumps(body))
    walk(copy, path)
    return copy, removed


# The field drift (miner-apis.md §1) the `field` flavour adds, per route: nothing else may
# differ from the spec.
FIELD_DRIFT = {
    "/api/v1/system": ("system-info", "os", "hostname"),
    "/api/v1/cooling": ("cooling-status", "fans", "*", "speed_percentage"),
    "/api/v1/power-supplies": ("psus_info", "*", "state"),
}


async def test_field_flavour_is_the_spec_plus_the_known_drift(sim_fleet, proto, contract):
    fleet = await sim_fleet(proto=1, password=PW, flavour="field")
    client = proto(fleet.inventory[0])
    await client.login()
    fleet.faults.set(client.entry["host"], "psu_fault")
    problems: list[str] = []
    for path, drift in FIELD_DRIFT.items():
        status, body = await client.call("GET", path)
        assert status == 200, path
        schema = contract.schema(path, "GET", 200)
        stripped, removed = _without(body, drift)
        assert removed and contract.validate(body, schema), f"{path}: no {'/'.join(drift)}"
        problems += [f"{path}: {p}" for p in contract.validate(stripped, schema)]
    assert not problems, "\n".join(problems)
    _, cooling = await client.call("GET", "/api/v1/cooling")
    assert all("percentage" not in f for f in cooling["cooling-status"]["fans"])
    status, errors = await client.call("GET", "/api/v1/errors")
    assert status == 200 and errors == []  # the failed PSU shows only in /power-supplies
