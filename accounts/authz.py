"""Single-object permission checks, built on the same grants as ``restrict``.

Services call ``authorize``/``authorize_on`` for every write, so pages, the API, the admin,
commands and tasks decide the same write the same way: org grants corrected by site roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accounts.errors import Forbidden
from accounts.models import grants_for

if TYPE_CHECKING:
    from accounts.actor import Actor


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


def authorize(
    actor: Actor, permission: str, org_id: int | None, site_id: int | None = None
) -> None:
    """A person must hold ``permission`` there; the system and fleet nodes are authorized by
    the path that built their actor (a management command, a node's signed session)."""
    if actor.user is not None:
        require_perm(actor.user, permission, org_id, site_id)


def authorize_on(actor: Actor, permission: str, obj: Any) -> None:
    org_id, site_id = obj.scope_ids()
    authorize(actor, permission, org_id, site_id)
