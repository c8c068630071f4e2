"""Refusals of the node gateway that are not a plain 400: the HTTP status is part of the
contract (409 not yet confirmed / already issued, 410 gone, 401/403 bad or revoked node)."""

from __future__ import annotations


class NodeRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
