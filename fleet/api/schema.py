"""What drf-spectacular can't read from the fleet API's serializers, told so that the schema is
true: a request valid by the schema is one the API accepts, and a rule the API enforces is in
the schema (a schema-driven fuzzer finds nothing).

- An action's body is closed (``additionalProperties: false``: ``miners.actions`` refuses a
  key it doesn't name), plus the body's ``schema_rules`` (exactly one of ``watts``/``mode``;
  ``manual`` cooling needs a speed).
- ``POST /jobs/``: ``params`` is the body of the chosen ``kind``, and the miners are given
  either by id or by filter, not both.
- Node-gateway base64 fields: standard base64 (padding, no whitespace) of exactly their bytes.

Registered on import: ``fleet.api.serializers`` imports this module.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension

B64_CHAR = "[A-Za-z0-9+/]"


class ActionBodyExtension(OpenApiSerializerExtension):
    target_class = "fleet.api.serializers.ActionBody"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        return {**schema, "additionalProperties": False, **type(self.target).schema_rules}


class JobCreateExtension(OpenApiSerializerExtension):
    target_class = "fleet.api.serializers.JobCreateSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        from fleet.api.serializers import ACTION_BODIES

        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        if direction != "request":
            return schema
        miners = schema["properties"].get("miners")
        if miners is not None:
            miners["minItems"] = 1  # no miners is a 400 ("No miners match.")
        kinds = []
        for kind, body in sorted(ACTION_BODIES.items()):
            branch: dict[str, Any] = {"properties": {"kind": one_of_values(kind)}}
            if body is None:
                branch["properties"]["params"] = {"type": "object", "maxProperties": 0}
            else:
                component = auto_schema.resolve_serializer(body, direction)
                branch["properties"]["params"] = component.ref
                body_schema = component.schema or {}
                if body_schema.get("required") or body_schema.get("minProperties"):
                    branch["required"] = ["params"]
            kinds.append(branch)
        schema["allOf"] = [
            {"oneOf": kinds},
            {"oneOf": [{"required": ["miners"]}, {"required": ["filter"]}]},
        ]
        return schema


def one_of_values(*values: str) -> dict[str, Any]:
    """``enum`` of these values inside ``allOf``, where drf-spectacular's enum hook (which
    makes a property's ``enum`` a shared component, by property name) leaves it alone: a
    branch's ``kind: [blink]`` would otherwise become the whole ``KindEnum``."""
    return {"allOf": [{"enum": list(values)}]}


def base64_pattern(length: int | None) -> str:
    """Standard base64 with its padding, of ``length`` bytes (any number when None)."""
    if length is None:
        return f"^(?:{B64_CHAR}{{4}})*(?:{B64_CHAR}{{2}}==|{B64_CHAR}{{3}}=)?$"
    tail = {0: "", 1: f"{B64_CHAR}{{2}}==", 2: f"{B64_CHAR}{{3}}="}[length % 3]
    return f"^{B64_CHAR}{{{length // 3 * 4}}}{tail}$"


def base64_chars(length: int) -> int:
    return (length + 2) // 3 * 4


class Base64FieldExtension(OpenApiSerializerFieldExtension):
    target_class = "fleet.api.node_serializers.Base64Field"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        length = self.target.length
        chars = self.target.max_length if length is None else base64_chars(length)
        # the pattern pins the length; drf-spectacular adds minLength 1 (not blank)
        return {"type": "string", "pattern": base64_pattern(length), "maxLength": chars}
