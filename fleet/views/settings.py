"""The fleet settings page: the org's poll interval (``org:manage`` changes it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.authz import has_perm
from accounts.errors import Refusal
from accounts.forms import add_service_errors
from accounts.models import Organization
from accounts.views.base import PageRequest, after_write, org_page, render_page
from fleet.models.settings import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from fleet.services.fleet_settings import (
    default_poll_interval,
    fleet_settings_for,
    fleet_settings_update,
)
from fleet.views.base import fleet_page


class FleetSettingsForm(forms.Form):
    poll_interval_s = forms.IntegerField(
        label="Poll interval (seconds)",
        min_value=POLL_INTERVAL_MIN,
        max_value=POLL_INTERVAL_MAX,
        help_text=f"How often each miner is read, {POLL_INTERVAL_MIN} to {POLL_INTERVAL_MAX} s. "
        "A change takes effect at each miner's next poll.",
    )


def _page(request: PageRequest, org: Organization, form: FleetSettingsForm | None = None,
          **extra: Any) -> HttpResponse:  # fmt: skip
    current = fleet_settings_for(org)
    can_manage = has_perm(request.user, "org:manage", org.pk)
    if form is None and can_manage:
        form = FleetSettingsForm(initial={"poll_interval_s": current.poll_interval_s})
    context = {
        "org": org,
        "current": current,
        "is_default": current._state.adding,
        "default_interval": default_poll_interval(),
        "form": form if can_manage else None,
    } | extra
    return render_page(request, "fleet/settings.html", "fleet/_settings.html", context)


@fleet_page("fleet:read")
@require_GET
def fleet_settings(request: PageRequest, org: Organization) -> HttpResponse:
    return _page(request, org)


@org_page("org:manage")
@require_POST
def fleet_settings_save(request: PageRequest, org: Organization) -> HttpResponse:
    form = FleetSettingsForm(request.POST)
    if not form.is_valid():
        return _page(request, org, form)
    try:
        saved = fleet_settings_update(
            actor=Actor.for_request(request),
            org=org,
            poll_interval_s=form.cleaned_data["poll_interval_s"],
        )
    except Refusal as exc:
        add_service_errors(form, exc)
        return _page(request, org, form)
    messages.success(
        request, f"Miners of {org.name} are now polled every {saved.poll_interval_s} s."
    )
    return after_write(request, org, _page, "fleet-settings")
