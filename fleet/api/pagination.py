"""Lists by page number (``?page=``) or by keyset cursor (``?cursor=``), in one paginator.

A cursor page is "the rows after (or before) this row in this ordering": the key is the row's
ordering values and its id, so inserts and deletes between requests never repeat or skip a row
whose values stay put, and page 200 costs what page 1 costs (no OFFSET, no COUNT). Any ordering
the queryset carries works, ascending or descending, nullable columns included: NULLs sort last
in both directions (``OrderKey`` below), in page mode too, so both modes list the same order.

The cursor is opaque: the key and the ordering it belongs to, JSON, signed with the
``SECRET_KEY`` (tampering, or a cursor of another ordering, is a 400 on ``cursor``).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core import signing
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import BooleanField, Expression, F, Model, OrderBy, Q, QuerySet, Value
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from accounts.api.pagination import PageNumberPagination

CURSOR_SALT = "fleet.api.cursor"
MAX_CURSOR_CHARS = 2000
_KEY = "cursor_key_"  # the annotations that carry each row's key


@dataclass(frozen=True)
class OrderKey:
    """One column of an ordering: ``path`` as the ORM spells it, its direction, and whether it
    can be NULL (a nullable field, or a field behind a relation that may be missing)."""

    path: str
    descending: bool
    nullable: bool

    def expression(self, *, reverse: bool = False) -> OrderBy:
        """NULLs after every value; ``reverse`` walks the same order backwards."""
        column = F(self.path)
        nulls = {("nulls_first" if reverse else "nulls_last"): True} if self.nullable else {}
        if self.descending != reverse:
            return column.desc(**nulls)
        return column.asc(**nulls)

    def after(self, value: Any) -> Q | None:
        """Rows strictly after ``value`` in this column (None: nothing is after NULL)."""
        if value is None:
            return None
        beyond = Q(**{f"{self.path}__{'lt' if self.descending else 'gt'}": value})
        return beyond | Q(**{f"{self.path}__isnull": True}) if self.nullable else beyond

    def before(self, value: Any) -> Q:
        if value is None:  # every value comes before NULL
            return Q(**{f"{self.path}__isnull": False})
        return Q(**{f"{self.path}__{'gt' if self.descending else 'lt'}": value})

    def equal(self, value: Any) -> Q:
        if value is None:
            return Q(**{f"{self.path}__isnull": True})
        return Q(**{self.path: value})


def order_keys(queryset: QuerySet[Any]) -> list[OrderKey]:
    """The queryset's ordering (its own or the model's default) as keys, ending with the
    primary key: rows that tie on every column keep one order."""
    model = queryset.model
    declared = list(queryset.query.order_by) or list(model._meta.ordering)
    keys: list[OrderKey] = []
    for item in declared:
        path, descending = _parse(item)
        if path in ("pk", model._meta.pk.name, model._meta.pk.attname):
            keys.append(OrderKey("pk", descending, nullable=False))
            return keys  # the primary key is unique: later columns never decide
        keys.append(OrderKey(path, descending, _nullable(model, path)))
    keys.append(OrderKey("pk", descending=False, nullable=False))
    return keys


def stable_ordering(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """The queryset in its own ordering, NULLs last either way, the id breaking ties."""
    return queryset.order_by(*(key.expression() for key in order_keys(queryset)))


def _parse(item: Any) -> tuple[str, bool]:
    if isinstance(item, str) and item and item != "?":
        return item.lstrip("-"), item.startswith("-")
    if isinstance(item, OrderBy) and isinstance(item.expression, F):
        return item.expression.name, item.descending
    raise TypeError(f"keyset pagination can't order by {item!r}")


def _nullable(model: type[Model], path: str) -> bool:
    """NULL possible: a nullable column, or one reached through a nullable or reverse relation
    (a LEFT JOIN: a miner that has never been polled has no latest row)."""
    opts = model._meta
    try:
        for part in path.split("__"):
            field: Any = opts.pk if part == "pk" else opts.get_field(part)
            if field.null:
                return True
            if field.is_relation and field.related_model is not None:
                opts = field.related_model._meta
    except FieldDoesNotExist:
        return True
    return False


class _RowComparison(Expression):
    """``(a, b, c) > (x, y, z)``: one index range where the equivalent OR of prefixes would be
    checked row by row. For columns that are never NULL and all sort the same way."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, paths: Sequence[str], operator: str, values: Sequence[Any]) -> None:
        super().__init__()
        self.columns: list[Any] = [F(path) for path in paths]
        self.operator = operator
        self.values = tuple(values)

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        columns, values, params = [], [], []
        for column in self.columns:
            sql, column_params = compiler.compile(column)
            columns.append(sql)
            params.extend(column_params)
        for column, value in zip(self.columns, self.values, strict=True):
            sql, value_params = compiler.compile(Value(value, output_field=column.output_field))
            values.append(sql)
            params.extend(value_params)
        return f"({', '.join(columns)}) {self.operator} ({', '.join(values)})", params


def beyond(keys: Sequence[OrderKey], values: Sequence[Any], *, forward: bool) -> Q | Expression:
    """The rows after (``forward``) or before the row whose key is ``values``."""
    if not any(k.nullable for k in keys) and len({k.descending for k in keys}) == 1:
        ascending_after = forward != keys[0].descending
        return _RowComparison([k.path for k in keys], ">" if ascending_after else "<", values)
    condition = Q(pk__in=[])  # nothing, or: equal on a prefix of the key and beyond on the next
    prefix = Q()
    for key, value in zip(keys, values, strict=True):
        step = key.after(value) if forward else key.before(value)
        if step is not None:
            condition |= prefix & step
        prefix &= key.equal(value)
    return condition


class NarrowFirst:
    """A queryset whose slices are read in two steps when its ordering crosses a relation (a
    miner's latest figures, its site's name) or the slice starts past the first row: the
    slice's ids first, then those rows whole. In one step PostgreSQL would join every miner
    with its latest row, JSON and all, and sort that (no index can serve such an order), or
    join and skip every row before an OFFSET. Still one query: the ids are a subquery."""

    ordered = True  # for Django's Paginator

    def __init__(self, queryset: QuerySet[Any]) -> None:
        self.queryset = queryset
        self.narrow = any("__" in key.path for key in order_keys(queryset))

    def count(self) -> int:
        return self.queryset.count()

    def __getitem__(self, window: slice) -> QuerySet[Any]:
        if not (self.narrow or window.start):
            return self.queryset[window]
        return self.queryset.filter(pk__in=self.queryset.values("pk")[window])


@dataclass
class _Window:
    rows: list[Any]
    first: tuple[Any, ...] | None
    last: tuple[Any, ...] | None
    more_after: bool
    more_before: bool


class CursorPageNumberPagination(PageNumberPagination):
    """``?page=N`` (with ``count``) as before; ``?cursor=`` selects keyset pages
    (``{next, previous, results}``): an empty cursor is the first page, and each page links
    the next and previous ones. With both, the cursor wins and ``page`` is ignored (documented
    on both parameters). ``page_size`` works in both modes."""

    cursor_query_param = "cursor"
    cursor_query_description = (
        "Keyset pagination instead of page numbers: empty for the first page, then the "
        "opaque value from `next` or `previous`. No `count`. Given with `page`, the cursor "
        "wins and `page` is ignored."
    )
    page_query_description = (
        "A page number within the paginated result set (with `count`). Ignored when `cursor` "
        "is given."
    )
    mode = "page"

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            self.mode = "page"
            sliced: Any = NarrowFirst(stable_ordering(queryset))
            return super().paginate_queryset(sliced, request, view)
        # with both, the cursor wins (its links never carry ``page``): a script that adds a
        # page number to a cursor link still walks the cursor pages
        self.mode = "cursor"
        self.request = request
        self.keys = order_keys(queryset)
        self.signature = ",".join(("-" if k.descending else "") + k.path for k in self.keys)
        size = self.get_page_size(request)
        annotated = queryset.annotate(
            **{f"{_KEY}{i}": F(key.path) for i, key in enumerate(self.keys)}
        )
        fields = [
            annotated.query.annotations[f"{_KEY}{i}"].output_field for i in range(len(self.keys))
        ]
        forward, key = self._decode(raw, fields) if raw else (True, None)
        self.window = self._fetch(annotated, key, forward, size)
        return self.window.rows

    def _fetch(
        self, queryset: QuerySet[Any], key: tuple[Any, ...] | None, forward: bool, size: int
    ) -> _Window:
        if key is not None:
            queryset = queryset.filter(beyond(self.keys, key, forward=forward))
        ordered = queryset.order_by(*(k.expression(reverse=not forward) for k in self.keys))
        rows = list(NarrowFirst(ordered)[: size + 1])
        more = len(rows) > size
        rows = rows[:size] if forward else rows[:size][::-1]
        first = self._key_of(rows[0]) if rows else None
        last = self._key_of(rows[-1]) if rows else None
        if forward:
            # came from a page (or from past the end): what lies before the first row, or the key
            before = first if first is not None else key
            return _Window(rows, before, last, more_after=more, more_before=key is not None)
        # reached backwards: the rows after the last one (with an empty page, the first page)
        return _Window(rows, first, last, more_after=True, more_before=more)

    def _key_of(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, f"{_KEY}{i}") for i in range(len(self.keys)))

    # --- the cursor itself ------------------------------------------------------------------
    def _encode(self, key: tuple[Any, ...], *, forward: bool) -> str:
        values = [v.isoformat() if isinstance(v, dt.date | dt.time) else v for v in key]
        payload = {"o": self.signature, "k": values, "f": forward}
        return signing.Signer(salt=CURSOR_SALT).sign_object(payload, compress=True)

    def _decode(self, raw: str, fields: Sequence[Any]) -> tuple[bool, tuple[Any, ...]]:
        invalid = ValidationError({self.cursor_query_param: ["Invalid cursor."]})
        if len(raw) > MAX_CURSOR_CHARS:
            raise invalid
        try:
            payload = signing.Signer(salt=CURSOR_SALT).unsign_object(raw)
        except (signing.BadSignature, ValueError, TypeError, zlib.error) as exc:
            raise invalid from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("k"), list):
            raise invalid
        if payload.get("o") != self.signature or len(payload["k"]) != len(fields):
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        "This cursor belongs to another ordering: start again without it."
                    ]
                }
            )
        try:
            key = tuple(
                None if v is None else field.to_python(v)
                for field, v in zip(fields, payload["k"], strict=True)
            )
        except (DjangoValidationError, ValueError, TypeError) as exc:
            raise invalid from exc
        return bool(payload.get("f", True)), key

    # --- the response -----------------------------------------------------------------------
    def _link(self, key: tuple[Any, ...] | None, *, forward: bool) -> str:
        assert self.request is not None  # set by paginate_queryset
        url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        token = "" if key is None else self._encode(key, forward=forward)
        return replace_query_param(url, self.cursor_query_param, token)

    def get_paginated_response(self, data: Any) -> Response:
        if self.mode == "page":
            return super().get_paginated_response(data)
        window = self.window
        next_link = previous_link = None
        if window.more_after and (window.last is not None or window.first is None):
            next_link = self._link(window.last, forward=True)
        if window.more_before and window.first is not None:
            previous_link = self._link(window.first, forward=False)
        return Response({"next": next_link, "previous": previous_link, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        paged["required"] = ["next", "previous", "results"]
        paged["properties"]["count"]["description"] = (
            "Rows over all pages (page mode only: absent with `cursor`)."
        )
        for link in ("next", "previous"):
            paged["properties"][link]["description"] = f"The {link} page's URL, or null."
        return paged

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        parameters.append(
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": self.cursor_query_description,
                "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS},
            }
        )
        return parameters
