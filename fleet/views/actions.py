"""Miner actions from the pages: bulk from the list, single from a miner's page. Both create a
job through ``job_create`` (which authorizes every miner at its site) and show its progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import ApplicationError, Refusal
from accounts.forms import add_service_errors
from accounts.models import Organization
from accounts.views.base import PageRequest, View, first_error
from fleet.actions import ACTIONS
from fleet.api.filters import MinerFilter
from fleet.forms import ACTION_FORMS, ActionForm, action_form
from fleet.models import Job, Miner
from fleet.services import jobs
from fleet.views.base import (
    SELECTION_KEYS,
    fleet_page,
    holds_in_org,
    list_url,
    miner_page,
    visible_miners,
)
from fleet.views.jobs import job_context

ID_DIGITS = 18  # a ticked row's id; longer ones can't be a row (and would overflow a bigint)


@dataclass(frozen=True)
class ActionControl:
    kind: str
    label: str
    form: ActionForm
    confirm: str = ""
    reason: str = ""  # why this miner can't (the control is shown disabled); "" when it can

    @property
    def has_errors(self) -> bool:
        return self.form.is_bound and bool(self.form.errors)


def _controls(
    permitted: Callable[[str], bool], what: str, miner: Miner | None, bound: ActionForm | None
) -> list[ActionControl]:
    """Controls of the actions the caller may run (the rest are not offered at all)."""
    controls = []
    for kind, (label, form_class) in ACTION_FORMS.items():
        action = ACTIONS[kind]
        if not permitted(action.permission):
            continue
        reason = ""
        form = bound if bound is not None and bound.prefix == kind else action_form(kind)
        if miner is not None:
            capabilities = set(miner.capabilities)
            form.fit(capabilities)
            if not action.capabilities & capabilities:
                needs = " or ".join(sorted(str(c).replace("_", " ") for c in action.capabilities))
                reason = f"{miner.model or miner.driver} has no {needs} support."
        confirm = form_class.confirm.format(what=what) if form_class.confirm else ""
        controls.append(ActionControl(kind, label, form, confirm, reason))
    return controls


def list_controls(
    request: PageRequest, org: Organization, bound: ActionForm | None = None
) -> list[ActionControl]:
    """Bulk controls: actions the caller may run somewhere in the org (the job skips or refuses
    the miners where they can't, with the reason)."""
    return _controls(
        lambda perm: holds_in_org(request.user, perm, org), "the selected miners", None, bound
    )


def miner_controls(
    request: PageRequest, miner: Miner, bound: ActionForm | None = None
) -> list[ActionControl]:
    return _controls(
        lambda perm: has_perm(request.user, perm, miner.org_id, miner.site_id),
        miner.name,
        miner,
        bound,
    )


def _create_job(
    request: PageRequest,
    org: Organization,
    form: ActionForm,
    miners: Callable[[], Sequence[Miner]],
    **options: Any,
) -> Job | None:
    """The job, or None with the refusal (of the form, the selection or the service) on
    ``form``."""
    if not form.is_valid():
        return None
    try:
        return jobs.job_create(
            actor=Actor.for_request(request),
            org=org,
            kind=str(form.prefix),
            params=form.params(),
            miners=miners(),
            **options,
        )
    except Refusal as exc:
        add_service_errors(form, exc)
        return None


def _selected(request: PageRequest, org: Organization) -> list[Miner]:
    """The ticked rows, or every miner matching the list's filters ("select all matching")."""
    visible: QuerySet[Miner] = visible_miners(request, org)
    if request.POST.get("all_matching"):
        selection = {k: request.POST[k] for k in SELECTION_KEYS if request.POST.get(k)}
        filterset = MinerFilter(selection, queryset=visible, request=request)
        if not filterset.is_valid():
            # an ignored filter would widen "all matching" to more miners than were shown
            raise ApplicationError("The list's filters changed; reload the list and try again.")
        return list(filterset.qs.order_by("pk"))
    posted = request.POST.getlist("miners")
    ids = {int(v) for v in posted if v.isascii() and v.isdigit() and len(v) <= ID_DIGITS}
    return list(visible.filter(pk__in=ids).order_by("pk")) if ids else []


@fleet_page("miner:read")  # like POST /api/v1/jobs/: the service checks the action per miner
@require_POST
def bulk_action(request: PageRequest, org: Organization) -> HttpResponse:
    kind = request.POST.get("kind", "")
    if kind not in ACTION_FORMS:
        messages.error(request, "Choose an action for the selected miners.")
        return redirect(list_url(request.POST))
    form = action_form(kind, request.POST)
    job = _create_job(request, org, form, lambda: _selected(request, org))
    if job is not None:
        url = reverse("job-page", args=[job.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if not request.htmx:
        messages.error(request, f"{ACTION_FORMS[kind][0]}: {first_error(form)}")
        return redirect(list_url(request.POST))
    context = {"controls": list_controls(request, org, bound=form)}
    return render(request, "fleet/miners/_bulk.html", context)


def _single_action(kind: str) -> View:
    @miner_page(ACTIONS[kind].permission)
    @require_POST
    def miner_action(request: PageRequest, org: Organization, miner: Miner) -> HttpResponse:
        form = action_form(kind, request.POST)
        form.fit(set(miner.capabilities))
        job = _create_job(request, org, form, lambda: [miner], single=True)
        if not request.htmx:
            if job is not None:
                return redirect("job-page", job.pk)
            messages.error(request, f"{ACTION_FORMS[kind][0]}: {first_error(form)}")
            return redirect("miner-page", miner.pk)
        context = {"miner": miner, "controls": miner_controls(request, miner, bound=form)}
        if job is not None:
            context |= job_context(request, job)
        return render(request, "fleet/miners/_actions.html", context)

    miner_action.__name__ = miner_action.__qualname__ = f"miner_action_{kind}"
    return miner_action


MINER_ACTIONS: dict[str, View] = {kind: _single_action(kind) for kind in ACTION_FORMS}
