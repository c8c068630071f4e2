"""The base every API viewset inherits: scoping and permissions applied once, not per view.

Subclasses declare ``queryset`` and ``permissions`` (action → catalog permission). They may not
override ``get_queryset``, ``get_object`` or ``get_permissions``; the escape hatches are named
``dangerously_get_queryset`` / ``dangerously_check_object`` so a reviewer sees them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.utils.cache import patch_cache_control
from rest_framework import exceptions, serializers, viewsets
from rest_framework import permissions as drf_permissions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authz import require_perm_on
from accounts.errors import Forbidden
from accounts.models import grants_for
from accounts.permissions import ALL, AUTHENTICATED, PUBLIC, is_declarable
from accounts.services.activity import activity_record_refusal

_SEALED = frozenset({"get_queryset", "get_object", "get_permissions"})
_READ_ACTIONS = frozenset({"list", "retrieve", "metadata"})
_ID_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() would also take " 3", "+3", "٣", "3_0"
_INTEGER = re.compile(r"-?[0-9]{1,19}")
ID_MAX = 2**63 - 1  # BigAutoField
_REFUSAL_VERBS = {"update": "update", "partial_update": "update", "destroy": "delete"}


class DeclaredPermission(drf_permissions.BasePermission):
    """Signed in, unless the action is declared public. A collection action with a permission
    of its own (an export) also needs that permission somewhere: else 403, not an empty file."""

    def has_permission(self, request: Request, view: Any) -> bool:
        perm = view.permission_for_action()
        if perm == PUBLIC:
            return True
        if not (request.user and request.user.is_authenticated):
            return False
        if view.is_collection_action() and perm in ALL:
            return grants_for(request.user).any_org_with(perm)
        return True


class ScopedViewSet(viewsets.GenericViewSet[Any]):
    permissions: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Compared with the base's own attributes, so a mixin can't slip an override in either.
        overridden = sorted(
            name for name in _SEALED if getattr(cls, name) is not getattr(ScopedViewSet, name)
        )
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}; scoping lives in ScopedViewSet. "
                "Use dangerously_get_queryset/dangerously_check_object if you really must."
            )
        for action, perm in cls.permissions.items():
            if not is_declarable(perm):
                raise TypeError(
                    f"{cls.__name__}.permissions[{action!r}] = {perm!r} is not in the catalog"
                )

    # --- declarations --------------------------------------------------------------------
    @classmethod
    def permission_for(cls, action: str | None) -> str | None:
        if action in ("metadata", None):
            return cls.permissions.get("list") or cls.permissions.get("retrieve")
        if action == "partial_update":
            return cls.permissions.get("partial_update", cls.permissions.get("update"))
        return cls.permissions.get(action)

    def permission_for_action(self) -> str:
        action = getattr(self, "action", None)
        perm = self.permission_for(action)
        if perm is None and action is None:  # no handler for this method on this route: 405
            raise exceptions.MethodNotAllowed(str(getattr(self.request, "method", "")))
        if perm is None and action == "metadata":  # OPTIONS on action-only routes
            return AUTHENTICATED
        if perm is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} declares no permission for {self.action!r}"
            )
        return perm

    def is_collection_action(self) -> bool:
        """A custom ``detail=False`` action (an export) whose permission isn't the list's own:
        it lists what that permission reaches, and needs it somewhere."""
        action = getattr(self, "action", None)
        if getattr(self, "detail", None) is not False or action in ("list", "create", "metadata"):
            return False
        return self.permission_for(action) != self.permissions.get("list")

    @property
    def read_permission(self) -> str:
        return self.permissions.get("retrieve") or self.permissions["list"]

    # --- sealed plumbing -----------------------------------------------------------------
    def get_permissions(self) -> list[drf_permissions.BasePermission]:
        return [DeclaredPermission()]

    def get_queryset(self) -> QuerySet[Any]:
        hook = getattr(self, "dangerously_get_queryset", None)
        if hook is not None:
            hooked: QuerySet[Any] = hook()
            return hooked
        assert self.queryset is not None, f"{type(self).__name__} needs a queryset"
        # a collection action (an export) lists what its own permission reaches
        permission = (
            self.permission_for_action() if self.is_collection_action() else self.read_permission
        )
        scoped: QuerySet[Any] = self.queryset.all().restrict(  # type: ignore[attr-defined]
            self.request.user, permission
        )
        return scoped

    def get_object(self) -> Any:
        obj = super().get_object()  # 404 outside the caller's scope
        perm = self.permission_for_action()
        if getattr(self, "action", None) not in _READ_ACTIONS and perm not in (
            PUBLIC,
            AUTHENTICATED,
        ):
            hook = getattr(self, "dangerously_check_object", None)
            try:
                if hook is not None:
                    hook(obj, perm)
                else:
                    require_perm_on(self.request.user, perm, obj)
            except Forbidden as exc:
                verb = _REFUSAL_VERBS.get(self.action, self.action.removeprefix("action_"))
                activity_record_refusal(
                    actor=self.actor(), verb=f"{obj._meta.model_name}.{verb}", target=obj, exc=exc
                )
                raise
        return obj

    update_serializer_class: ClassVar[type[Any] | None] = None

    def get_serializer_class(self) -> type[Any]:
        """Updates may use a serializer with more read-only fields (e.g. a site's org)."""
        if self.update_serializer_class is not None and self.action in ("update", "partial_update"):
            return self.update_serializer_class
        return super().get_serializer_class()

    # --- helpers for subclasses ----------------------------------------------------------
    def actor(self) -> Any:
        from accounts.actor import Actor

        return Actor.for_request(self.request)


class ScopedRelatedField(serializers.PrimaryKeyRelatedField[Model]):
    """A foreign key by id, strictly typed, among the rows the caller can see.

    JSON integers and strings of ASCII digits (form posts send strings) are ids; floats
    (``3.9`` would silently mean 3, ``1e400`` is infinity), booleans and everything else are a
    400, and so is an id out of the 64-bit range (unknown, like any id that doesn't exist).
    """

    scope: ClassVar[tuple[type[Model], str]]
    default_error_messages = {  # DRF merges these with its own along the MRO
        "incorrect_type": "Incorrect type. Expected an integer id, received {data_type}.",
        "not_an_id": "Expected an integer id, received a string that is not one.",
    }

    def get_queryset(self) -> QuerySet[Any]:
        model, permission = self.scope
        request = self.context["request"]
        visible: QuerySet[Any] = model._default_manager.all().restrict(request.user, permission)  # type: ignore[attr-defined]
        return visible

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if isinstance(data, str):
            if not _ID_DIGITS.fullmatch(data):
                self.fail("not_an_id")
            data = int(data)
        if not 1 <= data <= ID_MAX:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


# JSON values of the type the schema names, for every API serializer. DRF takes {"name": 0} as
# "0" and {"port": 80.9} as 80; here a number for a string, or a float, a boolean or a string
# that isn't digits for an integer, is a 400 on the field (with the other field errors).
# A comment, not a docstring: drf-spectacular would print it as every schema's description.
class StrictInput(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        wrong = _wrong_types(self.fields, data) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if wrong and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **wrong}) from exc
            raise
        if wrong:
            raise serializers.ValidationError(wrong)
        return value


def _wrong_types(
    fields: Mapping[str, serializers.Field[Any, Any, Any, Any]], data: Mapping[str, Any]
) -> dict[str, Any]:
    wrong: dict[str, Any] = {}
    for name, field in fields.items():
        if field.read_only or name not in data:
            continue
        value = data[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(field, serializers.CharField) and number:
            wrong[name] = ["Not a valid string."]
        elif isinstance(field, serializers.IntegerField) and not (
            (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, str) and _INTEGER.fullmatch(value))
        ):
            wrong[name] = ["A valid integer is required."]
    return wrong


def scoped_related(model: type[Model], permission: str) -> type[ScopedRelatedField]:
    """A ``ScopedRelatedField`` class for ``model``, its choices what the caller can see.

    Scope it by *visibility* (``AUTHENTICATED``, ``site:read``), not by the write permission:
    an invisible id is a 400 like any unknown id, while a visible one the caller may not write
    to is refused by the service's authorization, a 403.
    """

    class Field(ScopedRelatedField):
        scope = (model, permission)

    Field.__name__ = Field.__qualname__ = f"Scoped{model.__name__}Field"
    return Field


class CurrentOrgDefault:
    """``org`` left out of a create: the caller's organization when they belong to exactly one
    (contracts.md "HTTP API"); with several (or none) the field is required, a 400 naming it.

    A token-authenticated caller belongs to the token's organization only, so a token's writes
    default to its organization.
    """

    requires_context = True

    def __call__(self, field: serializers.Field[Any, Any, Any, Any]) -> Model:
        from accounts.models import Organization, grants_for

        orgs = grants_for(field.context["request"].user).member_orgs()
        if len(orgs) != 1:
            raise serializers.ValidationError(
                "This field is required: you belong to several organizations."
                if orgs
                else "This field is required."
            )
        return Organization._default_manager.get(pk=next(iter(orgs)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def no_store(response: Response) -> Response:
    """For a response that carries a secret (a new token, a set-password link): no browser,
    proxy or history cache may keep a copy."""
    patch_cache_control(response, no_store=True)
    return response
