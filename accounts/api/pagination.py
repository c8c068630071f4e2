"""Page-number pagination that refuses what it can't honour instead of guessing."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` are positive integers or a 400 naming the parameter, where
    DRF would quietly use the default for ``page_size=null`` or ``0``. A ``page_size`` over 500
    gets 500 a page; a page past the last one is DRF's 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    last_page_strings = ()  # "?page=last" isn't a number

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return min(_positive_int(self.page_size_query_param, raw), self.max_page_size)

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> int:
        raw = request.query_params.get(self.page_query_param)
        return 1 if raw is None else _positive_int(self.page_query_param, raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Number of results to return per page (at most {self.max_page_size}; "
                    "more is capped)."
                )
        return parameters


def _positive_int(name: str, raw: str) -> int:
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4000 else 0
    if value < 1:
        raise ValidationError({name: ["Enter a whole number of 1 or more."]})
    return value
