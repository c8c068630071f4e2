"""The fleet dashboard: totals now, the last 24 h, health, sites, the miners that need a look."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.models import Organization
from accounts.selectors import current_site
from accounts.views.base import PageRequest
from fleet.models import Job, Miner, MinerHealth
from fleet.selectors import fleet_series, fleet_summary, worst_performers
from fleet.views.base import fleet_page, holds_in_org


@fleet_page("fleet:read")
@require_GET
def fleet_dashboard(request: PageRequest, org: Organization) -> HttpResponse:
    user = request.user
    site = current_site(request, org)
    miners = Miner.objects.restrict(user, "fleet:read").filter(org=org)
    if site is not None:
        miners = miners.filter(site=site)
    summary = fleet_summary(miners)
    for row in summary["sites"]:
        row["attention"] = row["miners"] - row["health"].get(MinerHealth.OK, 0)
    counts = summary["totals"]["health"]
    can_see_miners = holds_in_org(user, "miner:read", org)
    context = {
        "org": org,
        "scope_site": site,
        "summary": summary,
        "health": [(value, label, counts.get(value, 0)) for value, label in MinerHealth.choices],
        "series": fleet_series(miners),
        "laggards": worst_performers(miners) if can_see_miners else None,
        "jobs": list(Job.objects.restrict(user, "miner:read").filter(org=org)[:5])
        if can_see_miners
        else None,
    }
    return render(request, "fleet/dashboard.html", context)
