"""The OpenAPI schema tells the whole truth: errors included, ids as they are stored.

drf-spectacular documents the success response of each operation; the errors every operation
can give (400, 401, 403, 404, 413, 414, 415, 429) are added here once, with their real shapes, so a
client generated from the schema knows them and a schema-driven fuzz accepts only them.
"""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import FieldDoesNotExist
from django.utils.ipv6 import MAX_IPV6_ADDRESS_LENGTH
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ComponentRegistry, ResolvedComponent, is_serializer
from rest_framework import serializers

from accounts.api.base import ID_MAX
from accounts.permissions import AUTHENTICATED, PUBLIC

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "permission": {
            "type": "string",
            "description": "The catalog permission the caller lacks (403 only).",
        },
    },
    "required": ["detail"],
}
FIELD_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Field name → its messages; `non_field_errors` for the object as a whole. A list "
        "field's errors are keyed by item index."
    ),
    "additionalProperties": {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}},
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        ]
    },
    "example": {"name": ["This field may not be blank."]},
}

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses each operation can give."""

    def get_operation(
        self,
        path: str,
        path_regex: str,
        path_prefix: str,
        method: str,
        registry: ComponentRegistry,
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for code, response in self._error_responses(operation).items():
            operation["responses"].setdefault(code, response)
        return operation

    def _get_request_for_media_type(
        self, serializer: Any, direction: Literal["request", "response"] = "request"
    ) -> Any:
        """A body is required when its object needs a key (``minProperties``) though no single
        field is required: an action's "exactly one of" body, where no body is a 400."""
        schema, required = super()._get_request_for_media_type(serializer, direction)  # type: ignore[no-untyped-call]
        if not required and is_serializer(serializer):
            component = self.resolve_serializer(serializer, direction)
            required = bool(component and (component.schema or {}).get("minProperties"))
        return schema, required

    def _error_responses(self, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
        error = self._component("Error", ERROR_SCHEMA)
        field_errors = self._component("FieldErrors", FIELD_ERRORS_SCHEMA)
        params = {p["in"] for p in operation.get("parameters", [])}
        body = "requestBody" in operation
        permission = self._declared_permission()
        responses: dict[str, dict[str, Any]] = {}
        if body or "query" in params or self.method in _UNSAFE:
            responses["400"] = _json(
                "Bad input: field errors, or `detail` for a body that isn't valid JSON.",
                {"anyOf": [field_errors, error]},
            )
        if permission != PUBLIC:
            responses["401"] = _json(
                "Not signed in, or the token is invalid, expired or revoked.", error
            )
            if permission != AUTHENTICATED or self.method in _UNSAFE:
                responses["403"] = _json(
                    "Signed in without the permission (named in `permission`), or a failed "
                    "CSRF check on a session write.",
                    error,
                )
        if "path" in params or "query" in params:
            responses["404"] = _json(
                "Outside your organizations, doesn't exist, or a page past the last.", error
            )
        if "query" in params:  # config.middleware.QueryStringLimitMiddleware
            responses["414"] = _json("The query string is over 8 KiB.", error)
        if body:
            responses["413"] = _json("The request body is over the size limit.", error)
            responses["415"] = _json("The Content-Type is not JSON or a form.", error)
        responses["429"] = {
            **_json("Throttled: too many requests for this user, token or address.", error),
            "headers": {
                "Retry-After": {
                    "schema": {"type": "integer"},
                    "description": "Seconds until a request will be accepted again.",
                }
            },
        }
        return responses

    def _declared_permission(self) -> str | None:
        permission_for = getattr(self.view, "permission_for", None)
        if permission_for is None:
            return None
        declared: str | None = permission_for(getattr(self.view, "action", None))
        return declared

    def _component(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name
        )
        self.registry.register_on_missing(component)
        return component.ref


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class ScopedRelatedFieldExtension(OpenApiSerializerFieldExtension):
    """An id. In a response it is null where the model allows it (a built-in role has no org),
    even though a create has to name one (or default to the caller's only org)."""

    target_class = "accounts.api.base.ScopedRelatedField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        if direction == "request":
            return {"type": "integer", "minimum": 1, "maximum": ID_MAX}
        schema: dict[str, Any] = {"type": "integer"}
        if _stored_nullable(self.target):
            schema["nullable"] = True
        return schema


def _stored_nullable(field: serializers.Field[Any, Any, Any, Any]) -> bool:
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None:
        return False
    try:
        return bool(model._meta.get_field(field.source).null)
    except FieldDoesNotExist:
        return False


class IPAddressFieldExtension(OpenApiSerializerFieldExtension):
    """An IP address, never a host name: drf-spectacular says "string" for DRF's default
    (protocol ``both``), so a fuzzer would send names the field refuses. An IPv6 address is at
    most 39 characters (Django's limit)."""

    target_class = "rest_framework.fields.IPAddressField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        v4: dict[str, Any] = {"format": "ipv4"}
        v6: dict[str, Any] = {"format": "ipv6", "maxLength": MAX_IPV6_ADDRESS_LENGTH}
        protocol = self.target.protocol.lower()
        if protocol == "ipv4":
            return {"type": "string", **v4}
        if protocol == "ipv6":
            return {"type": "string", **v6}
        return {"type": "string", "anyOf": [v4, v6]}
