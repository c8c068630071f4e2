"""Terminal pages: the workspace (tabs, a grid of xterm.js panes, the sessions sidebar), the
hosts (list, add, one host with its fingerprint and re-trust), remote commands on many hosts,
the recordings with their player, and the org's recording policy. Thin: writes are service
calls, reads ``restrict``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import add_service_errors
from accounts.models import Organization, Site
from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.views.base import PageRequest, render_page, scoped_get
from fleet.views.base import fleet_page, holds_in_org
from terminals import remote
from terminals.forms import HostForm, PolicyForm
from terminals.forms_remote import RemoteRunForm
from terminals.models import SshHost
from terminals.selectors import open_sessions, visible_hosts, visible_recordings
from terminals.services import hosts as host_services
from terminals.services import recordings as recording_services
from terminals.services.remote import RemoteRun, remote_run


def xterm_csp(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """xterm.js writes its cell metrics and theme into <style> elements it creates: allow
    inline styles on the pages that show a terminal, and nowhere else (scripts stay 'self')."""

    @wraps(view)
    def wrapped(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY.replace(
            "style-src 'self'", "style-src 'self' 'unsafe-inline'"
        )
        return response

    return wrapped


def _session_row(row: Any) -> dict[str, Any]:
    recording = getattr(row, "recording", None)
    return {
        "id": row.pk,
        "host": row.host_id,
        "host_name": row.host.name,
        "state": row.state,
        "recording": recording.pk if recording is not None else None,
    }


@xterm_csp
@fleet_page("terminal:open")
@require_GET
def workspace(request: PageRequest, org: Organization) -> HttpResponse:
    hosts = visible_hosts(request.user, org.pk)
    context = {
        "org": org,
        "hosts": hosts,
        "host_choices": [{"id": h.pk, "name": h.name, "blocked": h.key_changed} for h in hosts],
        "sessions": [_session_row(r) for r in open_sessions(request.user, org.pk)],
    }
    return render(request, "terminals/workspace.html", context)


@declare(PUBLIC)
@require_GET
def login_state(request: HttpRequest) -> HttpResponse:
    """Whether this browser is still signed in, for the workspace after a 4401: always a 200
    (a signed-out answer is not an error to the page). An SSO login due for re-validation
    never gets here: the SSO middleware answers 401 with its silent re-authentication URL."""
    response = JsonResponse({"signed_in": bool(request.user.is_authenticated)})
    response["Cache-Control"] = "no-store"
    return response


@fleet_page("terminal:open")
@require_GET
def host_list(request: PageRequest, org: Organization) -> HttpResponse:
    context = {
        "org": org,
        "hosts": visible_hosts(request.user, org.pk),
        "can_manage": holds_in_org(request.user, "terminal:manage", org),
    }
    return render(request, "terminals/hosts/list.html", context)


def _host_form(request: PageRequest, org: Organization, data: Any = None) -> HostForm:
    return HostForm(
        data,
        sites=Site.objects.restrict(request.user, "terminal:manage").filter(org=org),
        hosts=visible_hosts(request.user, org.pk),
    )


@fleet_page("terminal:manage")
@require_http_methods(["GET", "POST"])
def host_add(request: PageRequest, org: Organization) -> HttpResponse:
    form = _host_form(request, org, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            host = host_services.host_add(actor=Actor.for_request(request), **form.service_kwargs())
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Added {host.name}. Its host key is pinned on first use.")
            return redirect("ssh-host-page", pk=host.pk)
    return render(request, "terminals/hosts/add.html", {"org": org, "form": form})


@fleet_page("terminal:open")
@require_http_methods(["GET", "POST"])
def commands(request: PageRequest, org: Organization) -> HttpResponse:
    """GET: the form (htmx asks for it alone when the command changes); POST: the run, then
    its results above the form, or the form with its errors (400)."""
    hosts = visible_hosts(request.user, org.pk)
    run: RemoteRun | None = None
    if request.method == "POST":
        form = RemoteRunForm(request.POST, hosts=hosts)
        if form.is_valid():
            try:
                run = remote_run(actor=Actor.for_request(request), **form.service_kwargs())
            except Refusal as exc:
                add_service_errors(form, exc)
    else:
        initial = {"command": request.GET.get("command"), "hosts": request.GET.getlist("hosts")}
        form = RemoteRunForm(initial=initial, hosts=hosts)
    context = {
        "org": org,
        "catalog": list(remote.COMMANDS.values()),
        "form": form,
        "run": run,
        "max_hosts": remote.MAX_HOSTS,
        "timeout": f"{remote.COMMAND_TIMEOUT:g}",
        "can_manage": holds_in_org(request.user, "terminal:manage", org),
    }
    response = render_page(
        request, "terminals/commands/page.html", "terminals/commands/_form.html", context
    )
    if form.is_bound and run is None:
        response.status_code = 400
    return response


def _host(request: PageRequest, org: Organization, pk: int) -> SshHost:
    host: SshHost = scoped_get(
        request,
        SshHost.unscoped.select_related("site", "jump_host"),
        "terminal:open",
        org=org,
        pk=pk,
    )
    return host


@fleet_page("terminal:open")
@require_GET
def host_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    host = _host(request, org, pk)
    context = {
        "org": org,
        "host": host,
        "can_manage": has_perm(request.user, "terminal:manage", org.pk, host.site_id),
    }
    return render(request, "terminals/hosts/detail.html", context)


@fleet_page("terminal:manage")
@require_POST
def host_retrust(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    host = _host(request, org, pk)
    try:
        host = host_services.host_retrust(actor=Actor.for_request(request), host=host)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Trusted the new key of {host.name}.")
    return redirect("ssh-host-page", pk=host.pk)


@fleet_page("terminal:manage")
@require_POST
def host_delete(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    host = _host(request, org, pk)
    try:
        host_services.host_delete(actor=Actor.for_request(request), host=host)
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("ssh-host-page", pk=host.pk)
    messages.success(request, f"Removed {host.name}.")
    return redirect("ssh-hosts")


@fleet_page("terminal:open")
@require_GET
def recording_list(request: PageRequest, org: Organization) -> HttpResponse:
    can_manage = has_perm(request.user, "terminal:manage", org.pk)
    policy = recording_services.policy_for(org.pk)
    context = {
        "org": org,
        "recordings": [
            recording_services.recording_figures(recording)
            for recording in visible_recordings(request.user, org.pk)[:200]
        ],
        "can_manage": can_manage,
        "policy": policy,
        "policy_form": PolicyForm(
            initial={
                "record_sessions": policy.record_sessions,
                "record_input": policy.record_input,
                "retention_days": policy.retention_days,
            }
        )
        if can_manage
        else None,
    }
    return render(request, "terminals/recordings/list.html", context)


@xterm_csp
@fleet_page("terminal:open")
@require_GET
def recording_player(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    recording = get_object_or_404(visible_recordings(request.user, org.pk), pk=pk)
    download = reverse("terminal-recording-download", args=[recording.pk])
    context = {
        "org": org,
        "recording": recording,
        "figures": recording_services.recording_figures(recording),
        "download_url": download,
    }
    return render(request, "terminals/recordings/player.html", context)


@fleet_page("terminal:manage")
@require_POST
def policy_save(request: PageRequest, org: Organization) -> HttpResponse:
    form = PolicyForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(
                request, f"{form.fields[field].label}: {' '.join(str(e) for e in errors)}"
            )
        return redirect("terminal-recordings")
    try:
        recording_services.policy_update(
            actor=Actor.for_request(request), org=org, **form.cleaned_data
        )
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Saved the recording policy.")
    return redirect("terminal-recordings")
