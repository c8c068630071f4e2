"""Page plumbing shared by every page: the org guard, rendering, the scope switcher."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from accounts.authz import has_perm
from accounts.errors import Forbidden
from accounts.models import (
    Organization,
    RestrictedQuerySet,
    Site,
    User,
)
from accounts.permissions import AUTHENTICATED
from accounts.routes import declare
from accounts.selectors import (
    current_org,
)

MEMBERS_PER_PAGE = 25
ACTIVITY_PER_PAGE = 50


class PageRequest(HttpRequest):
    htmx: HtmxDetails


View = Callable[..., HttpResponse]


def org_page(permission: str) -> Callable[[View], View]:
    """``declare(permission)`` plus its enforcement: the caller must hold it in the switcher's
    org (else 403). The view gets that org as its second argument."""

    def wrap(view: View) -> View:
        @wraps(view)
        def page(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            org = current_org(request)
            if org is None:
                raise PermissionDenied("You aren't a member of any organization yet.")
            if not has_perm(request.user, permission, org.pk):
                raise PermissionDenied(f"Your role in {org.name} doesn't include '{permission}'.")
            try:
                return view(request, org, *args, **kwargs)
            except Forbidden as exc:
                raise PermissionDenied(exc.message) from exc

        return declare(permission)(page)

    return wrap


def scoped_get(
    request: HttpRequest,
    source: type[Model] | RestrictedQuerySet[Any],
    permission: str,
    **lookup: Any,
) -> Any:
    """The one way a page loads an object: through ``restrict`` (404 outside the caller's
    grants). ``source`` is a scoped model or an ``unscoped`` queryset to refine (joins)."""
    if isinstance(source, RestrictedQuerySet):
        queryset = source.restrict(request.user, permission)
    else:
        queryset = cast(Any, source).objects.restrict(request.user, permission)
    return get_object_or_404(queryset, **lookup)


def render_page(
    request: PageRequest, page: str, fragment: str, context: dict[str, Any]
) -> HttpResponse:
    """The fragment for htmx (pagination, search, refresh), the page for everything else."""
    htmx = request.htmx
    template = fragment if htmx and not htmx.history_restore_request else page
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def render_fragment(
    request: PageRequest, template: str, context: dict[str, Any], trigger: str = ""
) -> HttpResponse:
    response = render(request, template, context)
    if trigger:
        response["HX-Trigger"] = trigger
    return response


def current_user(request: HttpRequest) -> User:
    """The signed-in user: every page here sits behind sign-in (LoginRequiredMiddleware)."""
    return cast(User, request.user)


def after_write(
    request: PageRequest,
    org: Organization,
    page: Callable[..., HttpResponse],
    url_name: str,
    **extra: Any,
) -> HttpResponse:
    """htmx, or a form with errors: the re-rendered page; a plain successful POST: redirect
    (so a reload doesn't post again and the switcher's ``next`` is a GET page)."""
    return page(request, org, **extra) if request.htmx or extra else redirect(url_name)


def first_error(form: Any) -> str:
    return next(
        (str(e) for errors in form.errors.values() for e in errors), "Check the form and try again."
    )


@declare(AUTHENTICATED)
@require_POST
def switch_scope(request: HttpRequest) -> HttpResponse:
    """Org/site switcher. Only ids the user can see are accepted; anything else is ignored."""
    org = (
        Organization.objects.restrict(request.user, AUTHENTICATED)
        .filter(pk=to_int(request.POST.get("org")) or 0)
        .first()
    )
    if org is not None:
        if request.session.get("org_id") != org.pk:
            request.session["site_id"] = None
        request.session["org_id"] = org.pk
    site_id = to_int(request.POST.get("site"))
    if site_id is not None:
        site = Site.objects.restrict(request.user, "site:read").filter(pk=site_id).first()
        request.session["site_id"] = site.pk if site else None
    elif "site" in request.POST:
        request.session["site_id"] = None
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


def to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
