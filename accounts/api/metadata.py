"""What ``OPTIONS`` answers on every API route: DRF's basic metadata, never a 500.

DRF's ``SimpleMetadata`` describes the fields of ``PUT``/``POST`` by building the view's
serializer (and, for ``PUT``, looking up the object). Views without one serializer class (an
action-only viewset that picks one per action) or without a ``pk`` in the URL (a singleton)
made that a 500. Here the description of the actions is best effort: if it can't be built the
answer is the basic metadata (name, description, renders, parses), still a 200.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request

log = logging.getLogger(__name__)


class SafeMetadata(SimpleMetadata):
    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        try:
            actions: dict[str, Any] = super().determine_actions(request, view)
        except Exception:  # a view that can't describe its inputs: the basic metadata, not a 500
            log.info("OPTIONS: no field metadata for %s", type(view).__qualname__, exc_info=True)
            return {}
        return actions
