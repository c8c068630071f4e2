"""One scoping path: ``Model.objects.restrict(user, permission)``.

A user's grants come from their org memberships (a role per org) and site role assignments,
which replace the org role at that one site (narrowing or widening it). Everything a user can
reach is computed here and nowhere else; callers never filter by org themselves.

Scoped models have two ways in, named for what they do:

- ``Model.objects`` offers nothing but ``restrict(user, permission)``: what a caller may see.
- ``Model.unscoped`` is every row, for services and selectors that have already authorized
  the caller (or act as the system). Reaching for it in a view is a review flag.

Each model says where its organization (and site) live with ``scope_org`` / ``scope_site``
lookups, or overrides the one hook, ``scope_filter``. The superuser bypass lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from django.db import models
from django.db.models import Q

from accounts.permissions import ALL, AUTHENTICATED

if TYPE_CHECKING:
    from accounts.models.user import User

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Grants:
    org_perms: dict[int, frozenset[str]] = field(default_factory=dict)
    site_perms: dict[int, frozenset[str]] = field(default_factory=dict)
    site_org: dict[int, int] = field(default_factory=dict)
    superuser: bool = False
    user_id: int | None = None

    def orgs_with(self, perm: str) -> set[int]:
        if perm == AUTHENTICATED:
            return set(self.org_perms)
        return {org for org, perms in self.org_perms.items() if perm in perms}

    def sites_with(self, perm: str) -> set[int]:
        return {site for site, perms in self.site_perms.items() if perm in perms}

    def sites_without(self, perm: str) -> set[int]:
        return {site for site, perms in self.site_perms.items() if perm not in perms}

    def held(self, org_id: int | None, site_id: int | None = None) -> frozenset[str]:
        """What the user may do in ``org_id`` — at ``site_id`` when given (a site role replaces
        the org role there)."""
        if self.superuser:
            return ALL
        if site_id is not None and site_id in self.site_perms:
            return self.site_perms[site_id]
        if org_id is None:
            return frozenset()
        return self.org_perms.get(org_id, frozenset())

    def allows(self, perm: str, org_id: int | None, site_id: int | None = None) -> bool:
        if self.superuser:
            return True
        if perm == AUTHENTICATED:
            return org_id in self.org_perms
        return perm in self.held(org_id, site_id)

    def any_org_with(self, perm: str) -> bool:
        return self.superuser or bool(self.orgs_with(perm)) or bool(self.sites_with(perm))

    def member_orgs(self) -> set[int]:
        return set(self.org_perms)


NO_GRANTS = Grants()


def grants_for(user: Any) -> Grants:
    """Grants of ``user``, memoised on the user object (one request, one computation).

    A user authenticated by an API token carries ``rw_token_org`` (set by the token
    authentication): the token's grants are the owner's grants in that one organization, and
    nothing elsewhere — a superuser's token included.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_GRANTS
    cached: Grants | None = getattr(user, "_rw_grants", None)
    if cached is not None:
        return cached
    from accounts.models.org import Membership, SiteRoleAssignment

    token_org: int | None = getattr(user, "rw_token_org", None)
    memberships = Membership.unscoped.filter(user_id=user.pk)
    if token_org is not None:
        memberships = memberships.filter(org_id=token_org)
    org_perms = {
        org_id: frozenset(perms)
        for org_id, perms in memberships.values_list("org_id", "role__permissions")
    }
    superuser = bool(user.is_superuser)
    if token_org is not None and superuser:
        org_perms = {token_org: ALL}
        superuser = False
    site_perms: dict[int, frozenset[str]] = {}
    site_org: dict[int, int] = {}
    assignments = SiteRoleAssignment.unscoped.filter(
        user_id=user.pk, site__org_id__in=list(org_perms)
    )
    for site_id, org_id, perms in assignments.values_list(
        "site_id", "site__org_id", "role__permissions"
    ):
        site_perms[site_id] = frozenset(perms)
        site_org[site_id] = org_id
    grants = Grants(org_perms, site_perms, site_org, superuser=superuser, user_id=user.pk)
    user._rw_grants = grants
    return grants


def forget_grants(user: Any) -> None:
    if hasattr(user, "_rw_grants"):
        del user._rw_grants


class RestrictedQuerySet(models.QuerySet[M], Generic[M]):
    """QuerySet whose ``restrict`` applies the caller's grants through the model's hook."""

    def restrict(self, user: User | Any, permission: str) -> Self:
        grants = grants_for(user)
        if grants.superuser:
            return self.all()
        if grants is NO_GRANTS:
            return self.none()
        model: Any = self.model
        return self.filter(model.scope_filter(grants, permission))


class ScopedAccessor:
    """``Model.objects``: the scoped way in, and nothing else (no ``filter``, no ``all``)."""

    def __get__(self, instance: object, owner: type[M]) -> _Restrictor[M]:
        if instance is not None:
            raise AttributeError("objects is reached through the class, not an instance")
        return _Restrictor(owner)


class _Restrictor(Generic[M]):
    def __init__(self, model: type[M]) -> None:
        self.model = model

    def restrict(self, user: User | Any, permission: str) -> RestrictedQuerySet[M]:
        manager: Any = self.model._default_manager
        queryset: RestrictedQuerySet[M] = manager.all()
        return queryset.restrict(user, permission)


def org_site_filter(grants: Grants, permission: str, org_lookup: str, site_lookup: str | None) -> Q:
    """Rows of orgs where the role grants ``permission``, corrected site by site: a site role
    that lacks it hides the site's rows, one that has it shows them."""
    q = Q(**{f"{org_lookup}__in": grants.orgs_with(permission)})
    if site_lookup is None:
        return q
    hidden = grants.sites_without(permission)
    shown = grants.sites_with(permission)
    if hidden:
        q &= ~Q(**{f"{site_lookup}__in": hidden})
    if shown:
        q |= Q(**{f"{site_lookup}__in": shown})
    return q


class ScopedModel(models.Model):
    """Abstract base: the two managers above and the scope declarations."""

    scope_org: ClassVar[str] = "org"
    scope_site: ClassVar[str | None] = None

    unscoped = RestrictedQuerySet.as_manager()
    objects: ClassVar[ScopedAccessor] = ScopedAccessor()

    class Meta:
        abstract = True

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """The per-model hook: which rows ``grants`` reach with ``permission``."""
        return org_site_filter(grants, permission, cls.scope_org, cls.scope_site)

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
