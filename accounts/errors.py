"""Errors services raise; the API maps them to 400/403/404 and pages to form errors."""

from __future__ import annotations


class ApplicationError(Exception):
    """Bad input or a rule violation the caller can fix: HTTP 400 with field errors."""

    def __init__(
        self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.errors = errors or ({field: [message]} if field else {"non_field_errors": [message]})


class Forbidden(Exception):
    """The caller can see the object but lacks the permission: HTTP 403."""

    def __init__(self, permission: str):
        self.message = f"You need the '{permission}' permission for this."
        super().__init__(self.message)
        self.permission = permission


# What a service refuses with; pages catch these and show ``.message``.
Refusal = (ApplicationError, Forbidden)
