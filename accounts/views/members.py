"""Dashboard and the Users page: members, invitations, org and site roles."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.api.filters import MembershipFilter
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import (
    InviteForm,
    MemberRoleForm,
    SiteRoleForm,
    add_service_errors,
)
from accounts.models import (
    Invitation,
    Membership,
    Organization,
    Site,
    SiteRoleAssignment,
)
from accounts.permissions import AUTHENTICATED
from accounts.routes import declare
from accounts.selectors import (
    current_org,
    current_site,
    dashboard_summary,
    member_rows,
    mfa_overview,
    my_invitations,
    org_invitations,
    org_roles,
)
from accounts.services import invitations, members
from accounts.views.base import (
    MEMBERS_PER_PAGE,
    PageRequest,
    current_user,
    first_error,
    org_page,
    render_fragment,
    render_page,
    scoped_get,
)

# --- Dashboard --------------------------------------------------------------------------------


@declare(AUTHENTICATED)
@require_GET
def dashboard(request: PageRequest) -> HttpResponse:
    user = current_user(request)
    org = current_org(request)
    context: dict[str, Any] = {"org": org, "mfa": mfa_overview(user)}
    if org is not None:
        site = current_site(request, org)
        context |= {"scope_site": site} | dashboard_summary(user, org, site)
    else:
        context["invitations"] = list(my_invitations(user))
    return render(request, "accounts/dashboard.html", context)


# --- Users ------------------------------------------------------------------------------------


def _memberships(request: PageRequest, org: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.restrict(request.user, "user:read")
        .filter(org=org)
        .select_related("user", "role")
    )


def _membership(request: PageRequest, org: Organization, **lookup: Any) -> Membership:
    return cast(
        Membership,
        scoped_get(
            request,
            Membership.unscoped.select_related("user", "role"),
            "user:read",
            org=org,
            **lookup,
        ),
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
        "invitations": org_invitations(request.user, org),
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
    issued = None
    if form.is_valid():
        try:
            issued = invitations.member_invite(
                actor=Actor.for_request(request),
                org=org,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                full_name=form.cleaned_data["full_name"],
                base_url=request.build_absolute_uri("/"),
            )
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            form = InviteForm(roles=choices)
    return _invite_result(request, org, form, issued)


def _invite_result(
    request: PageRequest,
    org: Organization,
    form: InviteForm,
    issued: invitations.IssuedInvitation | None,
) -> HttpResponse:
    context: dict[str, Any] = {"invite_form": form, "issued": issued}
    if request.htmx:
        context |= {"org": org, "invitations": org_invitations(request.user, org)}
        return render_fragment(
            request, "accounts/users/_invite.html", context, "members-changed" if issued else ""
        )
    return _users_page(request, org, **context)


def _invitation(request: PageRequest, org: Organization, pk: int) -> Invitation:
    return cast(
        Invitation,
        scoped_get(
            request, Invitation.unscoped.select_related("role"), "user:read", org=org, pk=pk
        ),
    )


@org_page("user:manage")
@require_POST
def invitation_resend(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    invitation = _invitation(request, org, pk)
    form = InviteForm(roles=org_roles(request.user, org))
    try:
        issued = invitations.invitation_resend(
            actor=Actor.for_request(request),
            invitation=invitation,
            base_url=request.build_absolute_uri("/"),
        )
    except Refusal as exc:
        messages.error(request, exc.message)
        issued = None
    return _invite_result(request, org, form, issued)


@org_page("user:manage")
@require_POST
def invitation_revoke(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    invitation = _invitation(request, org, pk)
    try:
        invitations.invitation_revoke(actor=Actor.for_request(request), invitation=invitation)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked the invitation to {invitation.email}.")
    return _invite_result(request, org, InviteForm(roles=org_roles(request.user, org)), None)


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
    membership = _membership(request, org, pk=pk)
    form = MemberRoleForm(request.POST, roles=org_roles(request.user, org))
    if not form.is_valid():
        return _member_row(request, org, membership, first_error(form))
    try:
        membership = members.membership_update(
            actor=Actor.for_request(request), membership=membership, role=form.cleaned_data["role"]
        )
    except Refusal as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"{membership.user.email} is now {membership.role.name}.")
    return _member_row(request, org, membership)


@org_page("user:manage")
@require_POST
def member_remove(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    membership = _membership(request, org, pk=pk)
    email = membership.user.email
    try:
        members.membership_remove(actor=Actor.for_request(request), membership=membership)
    except Refusal as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"Removed {email} from {org.name}.")
    if request.htmx:
        return render_fragment(request, "partials/messages.html", {"oob": True}, "members-changed")
    return redirect("users")


@org_page("user:manage")
@require_POST
def member_site_role(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    membership = _membership(request, org, pk=pk)
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
    except Refusal as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(request, f"{membership.user.email} is {role.name} at {site.name}.")
    return _member_row(request, org, membership)


@org_page("user:manage")
@require_POST
def member_site_role_remove(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    assignment: SiteRoleAssignment = scoped_get(
        request,
        SiteRoleAssignment.unscoped.select_related("site", "role", "user"),
        "user:read",
        site__org=org,
        pk=pk,
    )
    membership = _membership(request, org, user_id=assignment.user_id)
    try:
        members.site_role_remove(actor=Actor.for_request(request), assignment=assignment)
    except Refusal as exc:
        return _member_row(request, org, membership, exc.message)
    messages.success(
        request, f"{assignment.user.email} no longer has a site role at {assignment.site.name}."
    )
    return _member_row(request, org, membership)
