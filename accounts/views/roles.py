"""The Roles page: a permission matrix editor for custom roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import (
    RoleCreateForm,
    RoleEditForm,
    add_service_errors,
)
from accounts.models import (
    Organization,
    Role,
)
from accounts.selectors import (
    org_roles,
    permission_groups,
)
from accounts.services import roles
from accounts.views.base import (
    PageRequest,
    after_write,
    first_error,
    org_page,
    render_page,
    scoped_get,
)

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
    return render_page(request, "accounts/roles/page.html", "accounts/roles/_roles.html", context)


def _custom_role(request: PageRequest, org: Organization, pk: int) -> Role:
    return cast(Role, scoped_get(request, Role, "role:manage", org=org, pk=pk))


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
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Created the role {role.name}. Tick its permissions below and save."
            )
            return after_write(request, org, _roles_page, "roles")
    return after_write(request, org, _roles_page, "roles", create_form=form)


@org_page("user:read")
@require_http_methods(["GET", "POST"])
def role_detail(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    """A role's address. GET (anyone who sees the matrix) lands on its column there; POST saves
    it, behind ``role_update``'s own role:manage guard."""
    if request.method == "POST":
        return role_update(request, pk=pk)
    role = get_object_or_404(org_roles(request.user, org), pk=pk)
    return redirect(f"{reverse('roles')}#role-column-{role.pk}")


@org_page("role:manage")
@require_POST
def role_update(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    role = _custom_role(request, org, pk)
    form = RoleEditForm(request.POST)
    if not form.is_valid():
        return after_write(
            request, org, _roles_page, "roles", role_errors={role.pk: first_error(form)}
        )
    try:
        roles.role_update(
            actor=Actor.for_request(request),
            role=role,
            name=form.cleaned_data["name"],
            # a form without the field (a script, an older page) leaves the description alone
            description=form.cleaned_data["description"] if "description" in request.POST else None,
            permissions=form.cleaned_data["permissions"],
        )
    except Refusal as exc:
        return after_write(request, org, _roles_page, "roles", role_errors={role.pk: exc.message})
    messages.success(request, f"Saved the role {role.name}.")
    return after_write(request, org, _roles_page, "roles")


@org_page("role:manage")
@require_POST
def role_delete(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    role = _custom_role(request, org, pk)
    try:
        roles.role_delete(actor=Actor.for_request(request), role=role)
    except Refusal as exc:
        return after_write(request, org, _roles_page, "roles", role_errors={role.pk: exc.message})
    messages.success(request, f"Deleted the role {role.name}.")
    return after_write(request, org, _roles_page, "roles")
