"""The org's single sign-on page: claim → role rules and the seat limit."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import add_service_errors
from accounts.models import Membership, Organization, Role, Site, SsoRoleMapping, SsoSeatLimit
from accounts.selectors import org_roles
from accounts.sso import config, mappings
from accounts.views.base import PageRequest, after_write, org_page, render_page, scoped_get


class MappingForm(forms.Form):
    claim = forms.CharField(
        max_length=200,
        initial="groups",
        help_text="A claim name or dotted path, e.g. <code>groups</code> or <code>realm_access.roles</code>.",
    )
    value = forms.CharField(
        max_length=200, widget=forms.TextInput(attrs={"placeholder": "e.g. fleet-ops"})
    )
    role = forms.ModelChoiceField(queryset=Role.unscoped.none(), empty_label=None)
    site = forms.ModelChoiceField(
        queryset=Site.unscoped.none(), required=False, empty_label="Whole organization"
    )
    priority = forms.IntegerField(
        min_value=0,
        max_value=mappings.MAX_PRIORITY,
        initial=100,
        help_text="Lowest first when several rules match.",
    )

    def __init__(self, *args: Any, user: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(Any, self.fields["role"]).queryset = org_roles(user, org)
        cast(Any, self.fields["site"]).queryset = Site.objects.restrict(user, "site:read").filter(
            org=org
        )


class SeatsForm(forms.Form):
    seats = forms.IntegerField(
        min_value=1, max_value=1_000_000, required=False, help_text="Empty: no limit."
    )


def _sso_page(request: PageRequest, org: Organization, **extra: Any) -> HttpResponse:
    user = request.user
    can_manage = has_perm(user, "user:manage", org.pk)
    can_set_seats = has_perm(user, "org:manage", org.pk)
    seats = SsoSeatLimit.unscoped.filter(org=org).values_list("seats", flat=True).first()
    context = {
        "org": org,
        "rules": SsoRoleMapping.objects.restrict(user, "user:read")
        .filter(org=org)
        .select_related("role", "site"),
        "can_manage": can_manage,
        "can_set_seats": can_set_seats,
        "seats": seats,
        "members": Membership.unscoped.filter(org=org).count(),
        "is_sso_org": str(getattr(settings, "OIDC_ORG", "")).lower() == org.slug.lower(),
        "sso_enabled": config.enabled(),
        "issuer": config.issuer(),
        "jit": settings.OIDC_JIT,
        "form": MappingForm(user=user, org=org) if can_manage else None,
        "seats_form": SeatsForm(initial={"seats": seats}) if can_set_seats else None,
    } | extra
    return render_page(request, "accounts/sso/page.html", "accounts/sso/_rules.html", context)


@org_page("user:read")
@require_GET
def sso_settings(request: PageRequest, org: Organization) -> HttpResponse:
    return _sso_page(request, org)


@org_page("user:manage")
@require_POST
def sso_mapping_create(request: PageRequest, org: Organization) -> HttpResponse:
    form = MappingForm(request.POST, user=request.user, org=org)
    if form.is_valid():
        try:
            mappings.sso_mapping_create(
                actor=Actor.for_request(request),
                org=org,
                claim=form.cleaned_data["claim"],
                value=form.cleaned_data["value"],
                role=form.cleaned_data["role"],
                site=form.cleaned_data["site"],
                priority=form.cleaned_data["priority"],
            )
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Rule added. It applies at each member's next SSO sign-in.")
            return after_write(request, org, _sso_page, "sso-settings")
    return after_write(request, org, _sso_page, "sso-settings", form=form)


@org_page("user:manage")
@require_POST
def sso_mapping_delete(request: PageRequest, org: Organization, pk: int) -> HttpResponse:
    mapping = scoped_get(request, SsoRoleMapping, "user:manage", org=org, pk=pk)
    try:
        mappings.sso_mapping_delete(actor=Actor.for_request(request), mapping=mapping)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Rule deleted. It stops applying at the next SSO sign-in.")
    return after_write(request, org, _sso_page, "sso-settings")


@org_page("org:manage")
@require_POST
def sso_seats_update(request: PageRequest, org: Organization) -> HttpResponse:
    form = SeatsForm(request.POST)
    if form.is_valid():
        try:
            mappings.sso_seat_limit_set(
                actor=Actor.for_request(request), org=org, seats=form.cleaned_data["seats"]
            )
        except Refusal as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Seat limit saved.")
            return after_write(request, org, _sso_page, "sso-settings")
    return after_write(request, org, _sso_page, "sso-settings", seats_form=form)
