"""Pages about the signed-in person: API tokens, security (sessions, MFA), and the activity log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.api.filters import ActivityFilter
from accounts.errors import Refusal
from accounts.forms import (
    TokenForm,
    add_service_errors,
    prepare_activity_filter_form,
)
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Organization,
    Site,
    TrackedSession,
)
from accounts.permissions import AUTHENTICATED
from accounts.routes import declare
from accounts.selectors import (
    login_history,
    mfa_overview,
)
from accounts.services import security, tokens
from accounts.views.base import (
    ACTIVITY_PER_PAGE,
    PageRequest,
    current_user,
    org_page,
    render_page,
    scoped_get,
)

# --- API tokens -------------------------------------------------------------------------------


def _my_orgs(request: PageRequest) -> QuerySet[Organization]:
    return Organization.objects.restrict(request.user, AUTHENTICATED).filter(
        memberships__user=current_user(request)
    )


def _own_tokens(request: PageRequest) -> QuerySet[ApiToken]:
    return (
        ApiToken.objects.restrict(request.user, AUTHENTICATED)
        .filter(user=current_user(request))
        .select_related("org")
    )


def _tokens_page(request: PageRequest, **extra: Any) -> HttpResponse:
    context = {
        "tokens": list(_own_tokens(request)),
        "form": TokenForm(orgs=_my_orgs(request)),
        "issued": None,
    } | extra
    return render_page(
        request, "accounts/tokens/page.html", "accounts/tokens/_tokens.html", context
    )


@declare(AUTHENTICATED)
@require_GET
def token_list(request: PageRequest) -> HttpResponse:
    return _tokens_page(request)


@declare(AUTHENTICATED)
@require_POST
def token_create(request: PageRequest) -> HttpResponse:
    form = TokenForm(request.POST, orgs=_my_orgs(request))
    if form.is_valid():
        try:
            issued = tokens.api_token_create(
                actor=Actor.for_request(request),
                user=current_user(request),
                org=form.cleaned_data["org"],
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
            )
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            return _tokens_page(request, issued=issued)
    return _tokens_page(request, form=form)


@declare(AUTHENTICATED)
@require_POST
def token_revoke(request: PageRequest, pk: int) -> HttpResponse:
    token: ApiToken = scoped_get(
        request,
        ApiToken.unscoped.filter(user=current_user(request)).select_related("org"),
        AUTHENTICATED,
        pk=pk,
    )
    tokens.api_token_revoke(actor=Actor.for_request(request), token=token)
    messages.success(request, f"Revoked the token {token.name}. Scripts using it now get 401.")
    return _tokens_page(request) if request.htmx else redirect("tokens")


# --- Security ---------------------------------------------------------------------------------


def _own_sessions(request: PageRequest) -> QuerySet[TrackedSession]:
    """Sessions of the caller that can still be alive (older rows outlived the cookie)."""
    alive_since = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return TrackedSession.objects.filter(user=current_user(request), last_seen_at__gte=alive_since)


def _security_page(request: PageRequest) -> HttpResponse:
    context = {
        "sessions": list(_own_sessions(request)),
        "current_key": request.session.session_key,
        "mfa": mfa_overview(current_user(request)),
        "history": login_history(current_user(request)),
    }
    return render_page(
        request, "accounts/security/page.html", "accounts/security/_sessions.html", context
    )


@declare(AUTHENTICATED)
@require_GET
def security_overview(request: PageRequest) -> HttpResponse:
    return _security_page(request)


@declare(AUTHENTICATED)
@require_POST
def session_revoke(request: PageRequest, pk: int) -> HttpResponse:
    session = get_object_or_404(_own_sessions(request), pk=pk)
    if session.session_key == request.session.session_key:
        messages.error(request, "That is this browser's session: use Sign out to end it.")
    else:
        security.session_revoke(actor=Actor.for_request(request), session=session)
        messages.success(request, "Signed that session out.")
    return _security_page(request) if request.htmx else redirect("security")


@declare(AUTHENTICATED)
@require_POST
def sessions_revoke_others(request: PageRequest) -> HttpResponse:
    count = security.sessions_revoke_others(
        actor=Actor.for_request(request),
        user=current_user(request),
        keep_session_key=request.session.session_key,
    )
    messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return _security_page(request) if request.htmx else redirect("security")


# --- Activity ---------------------------------------------------------------------------------


@org_page("activity:read")
@require_GET
def activity(request: PageRequest, org: Organization) -> HttpResponse:
    params = request.GET.copy()
    switcher_site = request.session.get("site_id")
    if "site" not in params and switcher_site:
        params["site"] = str(switcher_site)  # the site switcher is the default filter
    events = (
        ActivityEvent.objects.restrict(request.user, "activity:read")
        .filter(org=org)
        .select_related("site")
    )
    filterset = ActivityFilter(params, queryset=events, request=request)
    prepare_activity_filter_form(
        filterset.form, Site.objects.restrict(request.user, "site:read").filter(org=org)
    )
    page = Paginator(filterset.qs, ACTIVITY_PER_PAGE).get_page(params.get("page"))
    export = params.copy()
    export.pop("page", None)
    export["org"] = str(org.pk)
    context = {
        "org": org,
        "filter": filterset,
        "page": page,
        "filtered": any(value for key, value in params.items() if key != "page"),
        "export_url": f"{reverse('activity-export')}?{export.urlencode()}",
    }
    return render_page(
        request, "accounts/activity/page.html", "accounts/activity/_results.html", context
    )
