"""The org's jobs (newest first, paged), a job's progress: counts, per-miner results, cancel.
htmx polls a running job every 2 s."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.models import Organization
from accounts.views.base import PageRequest, render_page, scoped_get
from fleet.actions import ACTIONS
from fleet.forms import action_label
from fleet.models import Job, JobStatus
from fleet.selectors import job_items_visible
from fleet.services import jobs
from fleet.views.base import fleet_page, visible_miners

ITEMS_PER_PAGE = 100
JOBS_PER_PAGE = 50
RUNNING = (JobStatus.QUEUED, JobStatus.RUNNING)


def job_context(request: PageRequest, job: Job) -> dict[str, Any]:
    """What the progress view and the compact status box of a miner's page show."""
    action = ACTIONS.get(job.kind)  # other apps' jobs (pairing) may come with their own kinds
    return {
        "job": job,
        "label": action_label(job.kind),
        "running": job.status in RUNNING,
        "finished": job.done + job.failed,
        "can_cancel": job.status in RUNNING
        and action is not None
        and has_perm(request.user, action.permission, job.org_id),
    }


def _job(request: PageRequest, org: Organization, pk: int) -> Job:
    job: Job = scoped_get(request, Job, "miner:read", org=org, pk=pk)
    return job


@fleet_page("miner:read")
@require_GET
def job_list(request: PageRequest, org: Organization) -> HttpResponse:
    """Every job of the switcher's org the caller may read (as ``GET /api/v1/jobs/`` lists
    them): the page of 50, or for htmx (paging) the list alone."""
    jobs_visible = Job.objects.restrict(request.user, "miner:read").filter(org=org)
    page = Paginator(jobs_visible.order_by("-created_at", "-id"), JOBS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {"org": org, "page": page}
    return render_page(request, "fleet/jobs/list.html", "fleet/jobs/_list.html", context)


@fleet_page("miner:read")
@require_GET
def job_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    job = _job(request, org, pk)
    context = job_context(request, job) | {"org": org}
    # per-miner results of the miners the caller can see, as the API gives them
    items = job_items_visible(job, request.user, visible_miners(request, org))
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
