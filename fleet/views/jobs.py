"""The org's jobs (newest first, paged), a job's progress: counts, per-miner results, cancel.
htmx polls a running job every 2 s."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.models import Organization
from accounts.models.scoping import RestrictedQuerySet
from accounts.views.base import PageRequest, render_page, scoped_get
from fleet.api.filters import JobFilter
from fleet.forms import action_label
from fleet.models import Job, JobStatus
from fleet.selectors import job_items_visible, job_params_shown, with_params_shown
from fleet.services import jobs
from fleet.views.base import fleet_page

ITEMS_PER_PAGE = 100
JOBS_PER_PAGE = 50
RUNNING = (JobStatus.QUEUED, JobStatus.RUNNING)


def job_context(request: PageRequest, job: Job) -> dict[str, Any]:
    """What the progress view and the compact status box of a miner's page show: the
    parameters only to who sees every site of the job, the cancel control only to who may
    stop it (``jobs.job_can_cancel``: the permission at every site of its remaining items)."""
    return {
        "job": job,
        "label": action_label(job.kind),
        "running": job.status in RUNNING,
        "finished": job.done + job.failed,
        "params": job.params if job_params_shown(job, request.user) else None,
        "can_cancel": jobs.job_can_cancel(Actor.for_request(request), job),
    }


def _job(request: PageRequest, org: Organization, pk: int) -> Job:
    shown = cast(RestrictedQuerySet[Job], with_params_shown(Job.unscoped.all(), request.user))
    job: Job = scoped_get(request, shown, "miner:read", org=org, pk=pk)
    return job


@fleet_page("miner:read")
@require_GET
def job_list(request: PageRequest, org: Organization) -> HttpResponse:
    """Every job of the switcher's org the caller may read (as ``GET /api/v1/jobs/`` lists
    them, with its ``status`` and ``kind`` filters): the page of 50, or for htmx (paging,
    filtering) the list alone."""
    jobs_visible = Job.objects.restrict(request.user, "miner:read").filter(org=org)
    filterset = JobFilter(request.GET, queryset=jobs_visible, request=request)
    shown = filterset.qs if filterset.is_valid() else jobs_visible.none()
    page = Paginator(shown.order_by("-created_at", "-id"), JOBS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    filtered = any(request.GET.get(name) for name in ("status", "kind"))
    context = {"org": org, "page": page, "filter": filterset, "filtered": filtered}
    return render_page(request, "fleet/jobs/list.html", "fleet/jobs/_list.html", context)


@fleet_page("miner:read")
@require_GET
def job_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    job = _job(request, org, pk)
    context = job_context(request, job) | {"org": org}
    # per-miner results of the miners the caller can see, as the API gives them
    items = job_items_visible(job, request.user)
    if request.htmx and request.GET.get("view") == "status":
        problems = items.exclude(error="").values_list("miner_name", "error")[:3]
        return render(request, "fleet/jobs/_status.html", context | {"problems": problems})
    context["page"] = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    return render_page(request, "fleet/jobs/detail.html", "fleet/jobs/_progress.html", context)


@fleet_page("miner:read")  # like POST /api/v1/jobs/{id}/cancel: the service checks the action
@require_POST
def job_cancel(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    job = _job(request, org, pk)
    try:
        job = jobs.job_cancel(actor=Actor.for_request(request), job=job)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        if job.status == JobStatus.DONE:
            messages.info(request, "The job had already finished.")
        else:
            messages.success(request, "Cancelled: no further miners will be acted on.")
    return redirect("job-page", job.pk)
