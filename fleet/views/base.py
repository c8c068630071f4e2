"""The guards of the fleet pages.

Unlike the accounts pages, a fleet page may be opened on the strength of a site role: an org
viewer who operates one site may act on that site's miners. ``fleet_page`` asks for the
permission in the switcher's org or at one of its sites; rows are then narrowed by
``restrict`` and every write is decided again by its service, miner by miner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils.http import urlencode

from accounts.authz import has_perm
from accounts.errors import Forbidden
from accounts.models import Organization, grants_for
from accounts.routes import declare
from accounts.selectors import current_org
from accounts.views.base import PageRequest, View, scoped_get
from fleet.models import Miner

# The miner list's query: MinerFilter's filters (who is listed), then how they are shown.
SELECTION_KEYS = ("site", "health", "model", "firmware", "driver", "search")
LIST_KEYS = (*SELECTION_KEYS, "ordering", "page")


def holds_in_org(user: Any, permission: str, org: Organization) -> bool:
    """``permission`` from the org role, or from a site role at one of the org's sites."""
    grants = grants_for(user)
    if grants.allows(permission, org.pk):
        return True
    return any(grants.site_org.get(site) == org.pk for site in grants.sites_with(permission))


def _switcher_org(request: PageRequest, permission: str) -> Organization:
    org: Organization | None = current_org(request)
    if org is None:
        raise PermissionDenied("You aren't a member of any organization yet.")
    if not holds_in_org(request.user, permission, org):
        raise PermissionDenied(f"Your role in {org.name} doesn't include '{permission}'.")
    return org


def _refusals_as_403(view: View, *args: Any, **kwargs: Any) -> HttpResponse:
    try:
        return view(*args, **kwargs)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc


def fleet_page(permission: str) -> Callable[[View], View]:
    """``declare(permission)`` and its check (see the module docstring); the view gets the
    switcher's org as its second argument."""

    def wrap(view: View) -> View:
        @wraps(view)
        def page(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            org = _switcher_org(request, permission)
            return _refusals_as_403(view, request, org, *args, **kwargs)

        return declare(permission)(page)

    return wrap


def miner_page(permission: str) -> Callable[[View], View]:
    """A page about one miner of the switcher's org: 404 unless the caller can see it, then 403
    unless ``permission`` holds at its site. The view gets ``(request, org, miner)``."""

    def wrap(view: View) -> View:
        @wraps(view)
        def page(request: PageRequest, pk: int, *args: Any, **kwargs: Any) -> HttpResponse:
            org = _switcher_org(request, "miner:read")
            miner: Miner = scoped_get(
                request,
                Miner.unscoped.select_related("site", "latest"),
                "miner:read",
                org=org,
                pk=pk,
            )
            if not has_perm(request.user, permission, miner.org_id, miner.site_id):
                raise PermissionDenied(f"You need '{permission}' at {miner.site.name}.")
            return _refusals_as_403(view, request, org, miner, *args, **kwargs)

        return declare(permission)(page)

    return wrap


def list_url(params: Mapping[str, str]) -> str:
    """The miner list with the filters of ``params`` (a form post carries them along)."""
    # an empty site is kept: it means "all sites", not "the switcher's site"
    kept = {
        key: params[key]
        for key in LIST_KEYS
        if params.get(key) or (key == "site" and key in params)
    }
    return reverse("miners") + (f"?{urlencode(kept)}" if kept else "")


def visible_miners(request: PageRequest, org: Organization) -> QuerySet[Miner]:
    """The switcher org's miners the caller may see (every list and total starts here)."""
    return Miner.objects.restrict(request.user, "miner:read").filter(org=org)
