"""Pages. Thin: read through selectors/restrict, write through services."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import Organization, Site
from accounts.permissions import AUTHENTICATED, PUBLIC
from accounts.routes import declare


@declare(PUBLIC)
def admin_login_redirect(request: HttpRequest, extra_context: Any = None) -> HttpResponseRedirect:
    return redirect(f"/accounts/login/?next={request.get_full_path()}")


@declare(AUTHENTICATED)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/dashboard.html", {})


@declare(AUTHENTICATED)
@require_POST
def switch_scope(request: HttpRequest) -> HttpResponse:
    """Org/site switcher. Only ids the user can see are accepted; anything else is ignored."""
    org = (
        Organization.objects.restrict(request.user, AUTHENTICATED)
        .filter(pk=_int(request.POST.get("org")))
        .first()
    )
    if org is not None:
        if request.session.get("org_id") != org.pk:
            request.session["site_id"] = None
        request.session["org_id"] = org.pk
    site_id = _int(request.POST.get("site"))
    if site_id is not None:
        site = Site.objects.restrict(request.user, "site:read").filter(pk=site_id).first()
        request.session["site_id"] = site.pk if site else None
    elif "site" in request.POST:
        request.session["site_id"] = None
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
