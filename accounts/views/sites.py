"""The Sites page: an org's physical locations, as the site switcher lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import SiteForm, add_service_errors
from accounts.models import Organization, Site
from accounts.services import orgs
from accounts.views.base import (
    PageRequest,
    after_write,
    first_error,
    org_page,
    render_page,
    scoped_get,
)


@dataclass(frozen=True)
class SiteRow:
    site: Site
    can_manage: bool
    error: str = ""


def _sites_page(
    request: PageRequest, org: Organization, site_errors: dict[int, str] | None = None, **extra: Any
) -> HttpResponse:
    user = request.user
    visible = (
        Site.objects.restrict(user, "site:read")
        .filter(org=org)
        .annotate(site_role_count=Count("role_assignments"))
    )
    manageable = set(
        Site.objects.restrict(user, "site:manage").filter(org=org).values_list("pk", flat=True)
    )
    errors = site_errors or {}
    rows = [SiteRow(site, site.pk in manageable, errors.get(site.pk, "")) for site in visible]
    can_create = has_perm(user, "site:manage", org.pk)
    context = {
        "org": org,
        "rows": rows,
        "any_manageable": bool(manageable),
        "can_create": can_create,
        "create_form": SiteForm() if can_create else None,
    } | extra
    return render_page(request, "accounts/sites/page.html", "accounts/sites/_sites.html", context)


def _managed_site(request: PageRequest, org: Organization, pk: int) -> Site:
    """Another org's site is a 404 like an unknown id; a visible one the user may not manage
    is refused by the service (403)."""
    return cast(Site, scoped_get(request, Site, "site:read", org=org, pk=pk))


@org_page("site:read")
@require_GET
def sites(request: PageRequest, org: Organization) -> HttpResponse:
    return _sites_page(request, org)


@org_page("site:manage")
@require_POST
def site_create(request: PageRequest, org: Organization) -> HttpResponse:
    form = SiteForm(request.POST)
    if form.is_valid():
        try:
            site = orgs.site_create(
                actor=Actor.for_request(request),
                org=org,
                name=form.cleaned_data["name"],
                location=form.cleaned_data["location"],
            )
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Created the site {site.name}.")
            return after_write(request, org, _sites_page, "sites")
    return after_write(request, org, _sites_page, "sites", create_form=form)


@org_page("site:manage")
@require_POST
def site_update(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    site = _managed_site(request, org, pk)
    form = SiteForm(request.POST)
    if not form.is_valid():
        return after_write(
            request, org, _sites_page, "sites", site_errors={site.pk: first_error(form)}
        )
    try:
        orgs.site_update(
            actor=Actor.for_request(request),
            site=site,
            name=form.cleaned_data["name"],
            location=form.cleaned_data["location"],
        )
    except Refusal as exc:
        return after_write(request, org, _sites_page, "sites", site_errors={site.pk: exc.message})
    messages.success(request, f"Saved the site {site.name}.")
    return after_write(request, org, _sites_page, "sites")


@org_page("site:manage")
@require_POST
def site_delete(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    site = _managed_site(request, org, pk)
    try:
        orgs.site_delete(actor=Actor.for_request(request), site=site)
    except Refusal as exc:
        return after_write(request, org, _sites_page, "sites", site_errors={site.pk: exc.message})
    messages.success(request, f"Deleted the site {site.name}.")
    return after_write(request, org, _sites_page, "sites")
