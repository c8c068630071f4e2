"""Pages. Reads go through ``restrict()`` in the switcher's org; writes go through services.

An htmx request gets back the fragment it changed (messages ride along out of band); a plain
form post gets a redirect, or the whole page when it has to show form errors or a one-time secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from accounts.actor import Actor
from accounts.api.filters import ActivityFilter, MembershipFilter
from accounts.authz import has_perm
from accounts.errors import ApplicationError, Forbidden
from accounts.forms import (
    InviteForm,
    MemberRoleForm,
    RoleCreateForm,
    RoleEditForm,
    SiteRoleForm,
    TokenForm,
    add_service_errors,
    prepare_activity_filter_form,
)
from accounts.models import (
    ActivityEvent,
    ApiToken,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    TrackedSession,
    User,
)
from accounts.permissions import AUTHENTICATED, PUBLIC
from accounts.routes import declare
from accounts.selectors import (
    current_org,
    login_history,
    member_rows,
    mfa_overview,
    org_roles,
    permission_groups,
)
from accounts.services import members, roles, security, tokens

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
                raise PermissionDenied(str(exc)) from exc

        return declare(permission)(page)

    return wrap


def _render(
    request: PageRequest, page: str, fragment: str, context: dict[str, Any]
) -> HttpResponse:
    """The fragment for htmx (pagination, search, refresh), the page for everything else."""
    htmx = request.htmx
    template = fragment if htmx and not htmx.history_restore_request else page
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _fragment(
    request: PageRequest, template: str, context: dict[str, Any], trigger: str = ""
) -> HttpResponse:
    response = render(request, template, context)
    if trigger:
        response["HX-Trigger"] = trigger
    return response


def _me(request: HttpRequest) -> User:
    """The signed-in user: every page here sits behind sign-in (LoginRequiredMiddleware)."""
    return cast(User, request.user)


def _first_error(form: Any) -> str:
    return next(
        (str(e) for errors in form.errors.values() for e in errors), "Check the form and try again."
    )


@declare(PUBLIC)
def admin_login_redirect(request: HttpRequest, extra_context: Any = None) -> HttpResponseRedirect:
    return redirect(f"/accounts/login/?next={request.get_full_path()}")


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


# --- Dashboard --------------------------------------------------------------------------------


@declare(AUTHENTICATED)
@require_GET
def dashboard(request: PageRequest) -> HttpResponse:
    user = request.user
    org = current_org(request)
    mfa = mfa_overview(_me(request))
    context: dict[str, Any] = {"org": org, "mfa": mfa}
    if org is not None:
        sites = Site.objects.restrict(user, "site:read").filter(org=org)
        can = {
            perm.replace(":", "_"): has_perm(user, perm, org.pk)
            for perm in ("user:read", "user:manage", "activity:read")
        }
        member_count = (
            Membership.objects.restrict(user, "user:read").filter(org=org).count()
            if can["user_read"]
            else None
        )
        context |= {
            "can": can,
            "membership": Membership.objects.restrict(user, AUTHENTICATED)
            .filter(org=org, user=user)
            .select_related("role")
            .first(),
            "sites": list(sites[:6]),
            "site_count": sites.count(),
            "member_count": member_count,
            "recent": list(
                ActivityEvent.objects.restrict(user, "activity:read")
                .filter(org=org)
                .select_related("site")[:8]
            )
            if can["activity_read"]
            else None,
            "todo_site": not sites.exists(),
            "todo_invite": can["user_manage"] and member_count == 1,
        }
    return render(request, "accounts/dashboard.html", context)


# --- Users ------------------------------------------------------------------------------------


def _memberships(request: PageRequest, org: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.restrict(request.user, "user:read")
        .filter(org=org)
        .select_related("user", "role")
    )


def _member_context(request: PageRequest, org: Organization) -> dict[str, Any]:
    user = request.user
    return {
        "org": org,
        "roles": list(org_roles(user, org)),
        "sites": list(Site.objects.restrict(user, "user:manage").filter(org=org)),
        "can_manage": has_perm(user, "user:manage", org.pk),
    }


def _users_page(request: PageRequest, org: Organization, **extra: Any) -> HttpResponse:
    filterset = MembershipFilter(request.GET, queryset=_memberships(request, org), request=request)
    page = Paginator(filterset.qs, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    context = _member_context(request, org) | {
        "page": page,
        "rows": member_rows(request.user, org, page.object_list),
        "filter": filterset,
        "filtered": bool(request.GET.get("q") or request.GET.get("role")),
        "total": Membership.objects.restrict(request.user, "user:read").filter(org=org).count(),
    }
    if context["can_manage"]:
        context.setdefault("invite_form", InviteForm(roles=org_roles(request.user, org)))
    return _render(
        request, "accounts/users/page.html", "accounts/users/_list.html", context | extra
    )


@org_page("user:read")
@require_GET
def users(request: PageRequest, org: Organization) -> HttpResponse:
    return _users_page(request, org)


@org_page("user:manage")
@require_POST
def member_invite(request: PageRequest, org: Organization) -> HttpResponse:
    choices = org_roles(request.user, org)
    form = InviteForm(request.POST, roles=choices)
    invite = None
    if form.is_valid():
        try:
            invitation = members.member_invite(
                actor=Actor.for_request(request),
                org=org,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                full_name=form.cleaned_data["full_name"],
            )
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            path = invitation.set_password_path
            invite = {
                "email": invitation.membership.user.email,
                "role": invitation.membership.role.name,
                "link": request.build_absolute_uri(path) if path else None,
            }
            form = InviteForm(roles=choices)
    context = {"invite_form": form, "invite": invite}
    if request.htmx:
        return _fragment(
            request, "accounts/users/_invite.html", context, "members-changed" if invite else ""
        )
    return _users_page(request, org, **context)


def _member_row(
    request: PageRequest, org: Organization, membership: Membership, error: str = ""
) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("users")
    row = member_rows(request.user, org, [membership])[0]
    context = _member_context(request, org) | {"row": row, "error": error, "oob": True}
    return render(request, "accounts/users/_member_row.html", context)


@org_page("user:manage")
@require_POST
def member_role(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    membership = get_object_or_404(_memberships(request, org), pk=pk)
    form = MemberRoleForm(request.POST, roles=org_roles(request.user, org))
    if not form.is_valid():
        return _member_row(request, org, membership, _first_error(form))
    try:
        membership = members.membership_update(
            actor=Actor.for_request(request), membership=membership, role=form.cleaned_data["role"]
        )
    except ApplicationError as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"{membership.user.email} is now {membership.role.name}.")
    return _member_row(request, org, membership)


@org_page("user:manage")
@require_POST
def member_remove(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    membership = get_object_or_404(_memberships(request, org), pk=pk)
    email = membership.user.email
    try:
        members.membership_remove(actor=Actor.for_request(request), membership=membership)
    except ApplicationError as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"Removed {email} from {org.name}.")
    if request.htmx:
        return _fragment(request, "partials/messages.html", {"oob": True}, "members-changed")
    return redirect("users")


@org_page("user:manage")
@require_POST
def member_site_role(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    membership = get_object_or_404(_memberships(request, org), pk=pk)
    form = SiteRoleForm(
        request.POST,
        sites=Site.objects.restrict(request.user, "user:manage").filter(org=org),
        roles=org_roles(request.user, org),
    )
    if not form.is_valid():
        return _member_row(request, org, membership, _first_error(form))
    site, role = form.cleaned_data["site"], form.cleaned_data["role"]
    try:
        members.site_role_assign(
            actor=Actor.for_request(request), site=site, user=membership.user, role=role
        )
    except ApplicationError as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"{membership.user.email} is {role.name} at {site.name}.")
    return _member_row(request, org, membership)


@org_page("user:manage")
@require_POST
def member_site_role_remove(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    assignment = get_object_or_404(
        SiteRoleAssignment.objects.restrict(request.user, "user:read")
        .filter(site__org=org)
        .select_related("site", "role", "user"),
        pk=pk,
    )
    membership = get_object_or_404(_memberships(request, org), user_id=assignment.user_id)
    try:
        members.site_role_remove(actor=Actor.for_request(request), assignment=assignment)
    except ApplicationError as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(
        request, f"{assignment.user.email} no longer has a site role at {assignment.site.name}."
    )
    return _member_row(request, org, membership)


# --- Roles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleColumn:
    role: Role
    editable: bool
    error: str = ""


@dataclass(frozen=True)
class MatrixRow:
    permission: str
    description: str
    cells: list[tuple[RoleColumn, bool]]  # (column, granted) in column order


def _matrix(columns: list[RoleColumn]) -> list[tuple[str, list[MatrixRow]]]:
    return [
        (
            label,
            [
                MatrixRow(name, text, [(c, name in c.role.permissions) for c in columns])
                for name, text in perms
            ],
        )
        for label, perms in permission_groups()
    ]


def _roles_page(
    request: PageRequest, org: Organization, role_errors: dict[int, str] | None = None, **extra: Any
) -> HttpResponse:
    can_edit = has_perm(request.user, "role:manage", org.pk)
    counted = org_roles(request.user, org).annotate(
        member_count=Count("memberships", filter=Q(memberships__org=org), distinct=True)
    )
    errors = role_errors or {}
    columns = [
        RoleColumn(role, can_edit and not role.is_builtin, errors.get(role.pk, ""))
        for role in counted
    ]
    context = {
        "org": org,
        "columns": columns,
        "groups": _matrix(columns),
        "has_custom": any(not column.role.is_builtin for column in columns),
        "can_edit": can_edit,
        "create_form": RoleCreateForm(roles=org_roles(request.user, org)) if can_edit else None,
    } | extra
    return _render(request, "accounts/roles/page.html", "accounts/roles/_roles.html", context)


def _custom_role(request: PageRequest, org: Organization, pk: int) -> Role:
    return get_object_or_404(
        Role.objects.restrict(request.user, "role:manage").filter(org=org), pk=pk
    )


def _roles_written(request: PageRequest, org: Organization, **extra: Any) -> HttpResponse:
    if request.htmx or extra:
        return _roles_page(request, org, **extra)
    return redirect("roles")


@org_page("user:read")
@require_GET
def role_matrix(request: PageRequest, org: Organization) -> HttpResponse:
    return _roles_page(request, org)


@org_page("role:manage")
@require_POST
def role_create(request: PageRequest, org: Organization) -> HttpResponse:
    form = RoleCreateForm(request.POST, roles=org_roles(request.user, org))
    if form.is_valid():
        try:
            role = roles.role_create(
                actor=Actor.for_request(request),
                org=org,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                permissions=form.permissions(),
            )
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Created the role {role.name}. Tick its permissions below and save."
            )
            return _roles_written(request, org)
    return _roles_written(request, org, create_form=form)


@org_page("role:manage")
@require_POST
def role_update(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    role = _custom_role(request, org, pk)
    form = RoleEditForm(request.POST)
    if not form.is_valid():
        return _roles_written(request, org, role_errors={role.pk: _first_error(form)})
    try:
        roles.role_update(
            actor=Actor.for_request(request),
            role=role,
            name=form.cleaned_data["name"],
            permissions=form.cleaned_data["permissions"],
        )
    except ApplicationError as exc:
        return _roles_written(request, org, role_errors={role.pk: exc.message})
    messages.success(request, f"Saved the role {role.name}.")
    return _roles_written(request, org)


@org_page("role:manage")
@require_POST
def role_delete(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    role = _custom_role(request, org, pk)
    try:
        roles.role_delete(actor=Actor.for_request(request), role=role)
    except ApplicationError as exc:
        return _roles_written(request, org, role_errors={role.pk: exc.message})
    messages.success(request, f"Deleted the role {role.name}.")
    return _roles_written(request, org)


# --- API tokens -------------------------------------------------------------------------------


def _tokens_page(request: PageRequest, **extra: Any) -> HttpResponse:
    own = ApiToken.objects.restrict(request.user, AUTHENTICATED).filter(user=_me(request))
    context = {"tokens": list(own), "form": TokenForm(), "issued": None} | extra
    return _render(request, "accounts/tokens/page.html", "accounts/tokens/_tokens.html", context)


@declare(AUTHENTICATED)
@require_GET
def token_list(request: PageRequest) -> HttpResponse:
    return _tokens_page(request)


@declare(AUTHENTICATED)
@require_POST
def token_create(request: PageRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            issued = tokens.api_token_create(
                actor=Actor.for_request(request),
                user=_me(request),
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
            )
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            return _tokens_page(request, issued=issued)
    return _tokens_page(request, form=form)


@declare(AUTHENTICATED)
@require_POST
def token_revoke(request: PageRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(
        ApiToken.objects.restrict(request.user, AUTHENTICATED).filter(user=_me(request)), pk=pk
    )
    tokens.api_token_revoke(actor=Actor.for_request(request), token=token)
    messages.success(request, f"Revoked the token {token.name}. Scripts using it now get 401.")
    return _tokens_page(request) if request.htmx else redirect("tokens")


# --- Security ---------------------------------------------------------------------------------


def _own_sessions(request: PageRequest) -> QuerySet[TrackedSession]:
    """Sessions of the caller that can still be alive (older rows outlived the cookie)."""
    alive_since = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return TrackedSession.objects.filter(user=_me(request), last_seen_at__gte=alive_since)


def _security_page(request: PageRequest) -> HttpResponse:
    context = {
        "sessions": list(_own_sessions(request)),
        "current_key": request.session.session_key,
        "mfa": mfa_overview(_me(request)),
        "history": login_history(_me(request)),
    }
    return _render(
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
        user=_me(request),
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
    return _render(
        request, "accounts/activity/page.html", "accounts/activity/_results.html", context
    )
