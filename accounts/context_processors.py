from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.selectors import shell_context


def shell(request: HttpRequest) -> dict[str, Any]:
    """Navigation and the org/site switcher for the app shell."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"shell": shell_context(request)}
