"""Single-object permission checks, built on the same grants as ``restrict``."""

from __future__ import annotations

from typing import Any

from accounts.errors import Forbidden
from accounts.models import grants_for


def has_perm(user: Any, permission: str, org_id: int | None, site_id: int | None = None) -> bool:
    return grants_for(user).allows(permission, org_id, site_id)


def require_perm(
    user: Any, permission: str, org_id: int | None, site_id: int | None = None
) -> None:
    if not has_perm(user, permission, org_id, site_id):
        raise Forbidden(permission)


def require_perm_on(user: Any, permission: str, obj: Any) -> None:
    org_id, site_id = obj.scope_ids()
    require_perm(user, permission, org_id, site_id)
