"""Dashboard and the Users page: members, invitations, org and site roles."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.api.filters import MembershipFilter
from accounts.authz import has_perm
from accounts.errors import ApplicationError
from accounts.forms import (
    InviteForm,
    MemberRoleForm,
    SiteRoleForm,
    add_service_errors,
)
from accounts.models import (
    ActivityEvent,
    Membership,
    Organization,
    Site,
    SiteRoleAssignment,
)
from accounts.permissions import AUTHENTICATED
from accounts.routes import declare
from accounts.selectors import (
    current_org,
    member_rows,
    mfa_overview,
    org_roles,
)
from accounts.services import members
from accounts.views.base import (
    MEMBERS_PER_PAGE,
    PageRequest,
    current_user,
    first_error,
    org_page,
    render_fragment,
    render_page,
)

# --- Dashboard --------------------------------------------------------------------------------


@declare(AUTHENTICATED)
@require_GET
def dashboard(request: PageRequest) -> HttpResponse:
    user = request.user
    org = current_org(request)
    mfa = mfa_overview(current_user(request))
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
    return render_page(
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
        return render_fragment(
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
        return _member_row(request, org, membership, first_error(form))
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
        return render_fragment(request, "partials/messages.html", {"oob": True}, "members-changed")
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
        return _member_row(request, org, membership, first_error(form))
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
