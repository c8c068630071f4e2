"""One scoping path: ``Model.objects.restrict(user, permission)``.

A user's grants come from their org memberships (a role per org) and site role assignments,
which replace the org role at that one site (narrowing or widening it). Everything a user can
reach is computed here and nowhere else; callers never filter by org themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from django.db import models
from django.db.models import Q

from accounts.permissions import AUTHENTICATED

if TYPE_CHECKING:
    from accounts.models.user import User


@dataclass(frozen=True)
class Grants:
    org_perms: dict[int, frozenset[str]] = field(default_factory=dict)
    site_perms: dict[int, frozenset[str]] = field(default_factory=dict)
    site_org: dict[int, int] = field(default_factory=dict)
    superuser: bool = False

    def orgs_with(self, perm: str) -> set[int]:
        if perm == AUTHENTICATED:
            return set(self.org_perms)
        return {org for org, perms in self.org_perms.items() if perm in perms}

    def sites_with(self, perm: str) -> set[int]:
        return {site for site, perms in self.site_perms.items() if perm in perms}

    def sites_without(self, perm: str) -> set[int]:
        return {site for site, perms in self.site_perms.items() if perm not in perms}

    def allows(self, perm: str, org_id: int | None, site_id: int | None = None) -> bool:
        if self.superuser:
            return True
        if perm == AUTHENTICATED:
            return org_id in self.org_perms
        if site_id is not None and site_id in self.site_perms:
            return perm in self.site_perms[site_id]
        return org_id is not None and perm in self.org_perms.get(org_id, frozenset())

    def any_org_with(self, perm: str) -> bool:
        return self.superuser or bool(self.orgs_with(perm)) or bool(self.sites_with(perm))

    def member_orgs(self) -> set[int]:
        return set(self.org_perms)


def grants_for(user: Any) -> Grants:
    """Grants of ``user``, memoised on the user object (one request, one computation)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Grants()
    cached = getattr(user, "_rw_grants", None)
    if cached is not None:
        return cached
    from accounts.models.org import Membership, SiteRoleAssignment

    org_perms = {
        org_id: frozenset(perms)
        for org_id, perms in Membership.objects.filter(user_id=user.pk).values_list(
            "org_id", "role__permissions"
        )
    }
    site_perms: dict[int, frozenset[str]] = {}
    site_org: dict[int, int] = {}
    assignments = SiteRoleAssignment.objects.filter(
        user_id=user.pk, site__org_id__in=list(org_perms)
    )
    for site_id, org_id, perms in assignments.values_list(
        "site_id", "site__org_id", "role__permissions"
    ):
        site_perms[site_id] = frozenset(perms)
        site_org[site_id] = org_id
    grants = Grants(org_perms, site_perms, site_org, superuser=bool(user.is_superuser))
    user._rw_grants = grants
    return grants


def forget_grants(user: Any) -> None:
    if hasattr(user, "_rw_grants"):
        del user._rw_grants


class RestrictedQuerySet(models.QuerySet):
    """QuerySet whose ``restrict`` applies the caller's grants.

    Models declare where their organization (and optionally site) lives with ``scope_org`` and
    ``scope_site`` lookups, e.g. ``scope_org = "org"``, ``scope_site = "site"``.
    """

    def restrict(self, user: User | Any, permission: str) -> Self:
        grants = grants_for(user)
        if grants.superuser:
            return self.all()
        return self.filter(self.model_scope_q(grants, permission))

    def model_scope_q(self, grants: Grants, permission: str) -> Q:
        model: Any = self.model
        org_lookup: str = model.scope_org
        site_lookup: str | None = getattr(model, "scope_site", None)
        q = Q(**{f"{org_lookup}__in": grants.orgs_with(permission)})
        if site_lookup is None:
            return q
        return (q & ~Q(**{f"{site_lookup}__in": grants.sites_without(permission)})) | Q(
            **{f"{site_lookup}__in": grants.sites_with(permission)}
        )


class ScopedModel(models.Model):
    """Abstract base: gives the model a ``RestrictedQuerySet`` manager and scope declarations."""

    scope_org: ClassVar[str] = "org"
    scope_site: ClassVar[str | None] = None

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True

    def scope_ids(self) -> tuple[int | None, int | None]:
        """(org_id, site_id) of this object, for permission checks on a single object."""
        org_id = _follow(self, self.scope_org)
        site_id = _follow(self, self.scope_site) if self.scope_site else None
        return org_id, site_id


def _follow(obj: Any, lookup: str) -> int | None:
    parts = lookup.split("__")
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    last = parts[-1]
    if last in ("pk", "id"):
        return getattr(obj, "pk", None)
    return getattr(obj, f"{last}_id", None)
