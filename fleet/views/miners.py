"""The miner list (filter, sort, page, select, bulk actions), adding a miner, and a miner's page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import add_service_errors
from accounts.models import ActivityEvent, Organization, Site
from accounts.views.base import PageRequest, render_page
from fleet import dial
from fleet.api.filters import MinerFilter
from fleet.api.pagination import NarrowFirst
from fleet.forms import (
    CredentialsForm,
    MinerAddForm,
    MinerEditForm,
    MinerMoveForm,
    prepare_miner_filter_form,
)
from fleet.models import Miner
from fleet.selectors import samples_series
from fleet.services import miners as service
from fleet.views.actions import list_controls, miner_controls
from fleet.views.base import (
    SELECTION_KEYS,
    fleet_page,
    holds_in_org,
    miner_page,
    visible_miners,
)

MINERS_PER_PAGE = 50


@dataclass(frozen=True)
class Column:
    key: str  # data-col of its cells: what the column chooser hides
    label: str
    ordering: str  # MinerFilter's ordering name
    numeric: bool = False
    hidden: bool = False  # until the chooser (localStorage) says otherwise


COLUMNS = (
    Column("name", "Name", "name"),
    Column("host", "IP address", "host"),
    Column("site", "Site", "site"),
    Column("model", "Model", "model"),
    Column("firmware", "Firmware", "firmware", hidden=True),
    Column("health", "Health", "health"),
    Column("hashrate", "Hashrate", "hashrate_ths", numeric=True),
    Column("power", "Power", "power_w", numeric=True),
    Column("efficiency", "Efficiency", "efficiency_jth", numeric=True),
    Column("temp", "Max temp", "max_temp_c", numeric=True),
    Column("updated", "Last poll", "updated_at", hidden=True),
)


# --- The list ---------------------------------------------------------------------------------


def _list_params(request: PageRequest) -> QueryDict:
    """The list's query; the site switcher's site is the default site filter."""
    params = request.GET.copy()
    switcher_site = request.session.get("site_id")
    if "site" not in params and switcher_site:
        params["site"] = str(switcher_site)
    return params


def _distinct(miners: QuerySet[Miner], field: str) -> list[str]:
    return sorted(v for v in miners.order_by().values_list(field, flat=True).distinct() if v)


def _sorting(column: Column, ordering: str) -> tuple[Column, str, str]:
    """The column, its aria-sort state, and the ordering its header link asks for."""
    if ordering == column.ordering:
        return column, "ascending", f"-{column.ordering}"
    if ordering == f"-{column.ordering}":
        return column, "descending", column.ordering
    return column, "", column.ordering


def _list_context(request: PageRequest, org: Organization) -> dict[str, Any]:
    user = request.user
    params = _list_params(request)
    visible = visible_miners(request, org)
    filterset = MinerFilter(
        params, queryset=visible.select_related("site", "latest"), request=request
    )
    prepare_miner_filter_form(
        filterset.form,
        Site.objects.restrict(user, "site:read").filter(org=org),
        _distinct(visible, "model"),
        _distinct(visible, "firmware"),
    )
    # a deep page, or one sorted by a latest figure or the site, reads its ids first
    rows: Any = NarrowFirst(filterset.qs)
    page = Paginator(rows, MINERS_PER_PAGE).get_page(params.get("page"))
    ordering = params.get("ordering", "")
    filterset.is_valid()  # the fields that are valid filter the list (the others are shown)
    effective = filterset.form.cleaned_data
    selection = {
        key: getattr(effective.get(key), "pk", effective.get(key)) or "" for key in SELECTION_KEYS
    }
    return {
        "org": org,
        "filter": filterset,
        "params": params,
        "page": page,
        "columns": [_sorting(column, ordering) for column in COLUMNS],
        "ordering": ordering,
        "hidden_columns": " ".join(c.key for c in COLUMNS if c.hidden),
        "selection": selection,
        "filtered": any(selection.values()),
        "org_empty": not page.object_list and not visible.exists(),
        "controls": list_controls(request, org),
        "can_add": holds_in_org(user, "miner:pair", org),
    }


@fleet_page("miner:read")
@require_GET
def miner_list(request: PageRequest, org: Organization) -> HttpResponse:
    context = _list_context(request, org)
    if context["can_add"] and not request.htmx:
        context["add_form"] = _add_form(request, org)
        context |= _no_sites(request, org, context["add_form"])
    return render_page(request, "fleet/miners/list.html", "fleet/miners/_results.html", context)


# --- Adding a miner ---------------------------------------------------------------------------


def _add_form(request: PageRequest, org: Organization, data: Any = None) -> MinerAddForm:
    sites = Site.objects.restrict(request.user, "miner:pair").filter(org=org)
    form = MinerAddForm(data, sites=sites, drivers=dial.driver_names())
    switcher_site = request.session.get("site_id")
    if data is None and switcher_site:
        form.initial["site"] = switcher_site
    return form


def _no_sites(request: PageRequest, org: Organization, form: MinerAddForm) -> dict[str, Any]:
    """The form's empty state: no site to add a miner to (the org has none yet, or none where
    the caller may pair), with the way to the sites page instead of a dead Site select."""
    sites: QuerySet[Site] = form.fields["site"].queryset  # type: ignore[attr-defined]
    if sites.exists():
        return {"no_sites": False}
    return {
        "no_sites": True,
        "org_has_sites": Site.objects.restrict(request.user, "site:read").filter(org=org).exists(),
        "can_create_site": has_perm(request.user, "site:manage", org.pk),
    }


@fleet_page("miner:pair")
@require_http_methods(["GET", "POST"])
def miner_add(request: PageRequest, org: Organization) -> HttpResponse:
    """The add-miner form: a dialog on the list, this page without JavaScript."""
    if request.method == "GET":
        form = _add_form(request, org)
        context = {"org": org, "form": form} | _no_sites(request, org, form)
        return render(request, "fleet/miners/add.html", context)
    form = _add_form(request, org, request.POST)
    empty = _no_sites(request, org, form)
    if empty["no_sites"]:
        template = "fleet/miners/_add_form.html" if request.htmx else "fleet/miners/add.html"
        return render(request, template, {"org": org, "form": form} | empty, status=400)
    if form.is_valid():
        try:
            miner = service.miner_add(actor=Actor.for_request(request), **form.service_kwargs())
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Added {miner.name} ({miner.model or miner.driver}).")
            url = miner_url(miner)
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = "fleet/miners/_add_form.html" if request.htmx else "fleet/miners/add.html"
    return render(request, template, {"org": org, "form": form})


def miner_url(miner: Miner) -> str:
    return reverse("miner-page", args=[miner.pk])


# --- One miner --------------------------------------------------------------------------------

RANGES = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7)}


def _detail_context(request: PageRequest, org: Organization, miner: Miner) -> dict[str, Any]:
    user = request.user
    chart_range = request.GET.get("range", "24h")
    if chart_range not in RANGES:
        chart_range = "24h"
    now = timezone.now()
    series = samples_series(miner, start=now - RANGES[chart_range], end=now, step=None)
    can = {
        "rename": has_perm(user, "miner:rename", org.pk, miner.site_id),
        "pair": has_perm(user, "miner:pair", org.pk, miner.site_id),
        "delete": has_perm(user, "miner:delete", org.pk, miner.site_id),
    }
    move_sites = Site.objects.restrict(user, "miner:pair").filter(org=org).exclude(pk=miner.site_id)
    if has_perm(user, "miner:unpair", org.pk, miner.site_id) and move_sites.exists():
        can["move"] = True
    activity = None
    if holds_in_org(user, "activity:read", org):
        activity = list(
            ActivityEvent.objects.restrict(user, "activity:read")
            .filter(org=org, target_type="miner", target_id=str(miner.pk))
            .select_related("site")[:10]
        )
    return {
        "org": org,
        "miner": miner,
        "latest": getattr(miner, "latest", None),
        "series": series,
        "ranges": [(key, int(span.total_seconds())) for key, span in RANGES.items()],
        "chart_range": chart_range,
        "controls": miner_controls(request, miner),
        "can": can,
        "edit_form": MinerEditForm(
            initial={
                "name": miner.name,
                "tags": ", ".join(miner.tags),
                "rack": miner.rack,
                "position": miner.position,
            }
        ),
        "move_form": MinerMoveForm(sites=move_sites),
        "credentials_form": CredentialsForm(initial={"username": miner.username}),
        "activity": activity,
    }


def _detail_page(
    request: PageRequest, org: Organization, miner: Miner, **bound: Any
) -> HttpResponse:
    return render(request, "fleet/miners/detail.html", _detail_context(request, org, miner) | bound)


@miner_page("miner:read")
@require_GET
def miner_detail(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    return _detail_page(request, org, miner)


def _write(
    request: PageRequest,
    org: Organization,
    miner: Miner,
    form_name: str,
    form: forms.Form,
    write: Callable[[dict[str, Any]], Miner],
    done: Callable[[Miner], str],
) -> HttpResponse:
    """A form of the miner's page: valid and accepted by the service → back to the page with a
    message; invalid or refused → the page with the form's errors."""
    if form.is_valid():
        try:
            miner = write(form.cleaned_data)
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, done(miner))
            return redirect("miner-page", miner.pk)
    return _detail_page(request, org, miner, **{form_name: form})


@miner_page("miner:rename")
@require_POST
def miner_edit(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    actor = Actor.for_request(request)
    return _write(
        request,
        org,
        miner,
        "edit_form",
        MinerEditForm(request.POST),
        lambda data: service.miner_update(actor=actor, miner=miner, **data),
        lambda saved: f"Saved {saved.name}.",
    )


@miner_page("miner:unpair")
@require_POST
def miner_move(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    actor = Actor.for_request(request)
    sites = Site.objects.restrict(request.user, "miner:pair").filter(org=org)
    return _write(
        request,
        org,
        miner,
        "move_form",
        MinerMoveForm(request.POST, sites=sites),
        lambda data: service.miner_move(actor=actor, miner=miner, site=data["site"]),
        lambda moved: f"Moved {moved.name} to {moved.site.name}.",
    )


@miner_page("miner:pair")
@require_POST
def miner_credentials(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    actor = Actor.for_request(request)
    return _write(
        request,
        org,
        miner,
        "credentials_form",
        CredentialsForm(request.POST),
        lambda data: service.miner_set_credentials(actor=actor, miner=miner, **data),
        lambda saved: f"Saved new credentials for {saved.name}.",
    )


@miner_page("miner:delete")
@require_POST
def miner_delete(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
    name = miner.name
    try:
        service.miner_delete(actor=Actor.for_request(request), miner=miner)
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("miner-page", miner.pk)
    messages.success(request, f"Deleted {name} from the fleet. The rig itself was not touched.")
    return redirect("miners")
