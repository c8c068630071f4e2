"""``/metrics/miners``: one Prometheus series per miner and signal, for Grafana.

Who sees what: the operators' ``METRICS_TOKEN`` (bearer) sees every miner; an API token
(``Authorization: Token …``) sees the miners its owner may read in the token's organization.
Anything else is a 401 — the endpoint is never open, even when ``METRICS_TOKEN`` is unset.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.actor import client_ip
from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.services.tokens import api_token_authenticate
from fleet.models import Miner

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEALTHS = ("ok", "degraded", "offline", "auth_needed", "default_password", "unknown")
_GAUGES = (
    ("rigwarden_miner_hashrate_ths", "Hashrate in TH/s", "latest__hashrate_ths"),
    ("rigwarden_miner_power_watts", "Power draw in watts", "latest__power_w"),
    ("rigwarden_miner_efficiency_jth", "Efficiency in J/TH", "latest__efficiency_jth"),
    ("rigwarden_miner_power_target_watts", "Power target in watts", "latest__power_target_w"),
    ("rigwarden_miner_temperature_max_celsius", "Hottest reading", "latest__max_temp_c"),
)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _visible(request: HttpRequest) -> QuerySet[Miner] | None:
    header = request.headers.get("Authorization", "")
    expected = settings.METRICS_TOKEN
    if expected and hmac.compare_digest(header.encode(), f"Bearer {expected}".encode()):
        return Miner.unscoped.all()
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "token" and secret:
        token = api_token_authenticate(secret.strip(), ip=client_ip(request))
        if token is not None:
            user = token.user
            user.rw_token_org = token.org_id
            return Miner.objects.restrict(user, "miner:read")
    return None


def _lines(miners: QuerySet[Miner]) -> Iterator[str]:
    rows = list(
        miners.order_by("id").values(
            "id",
            "name",
            "model",
            "driver",
            "health",
            "org__slug",
            "site__slug",
            "latest__updated_at",
            *(field for _n, _h, field in _GAUGES),
        )
    )

    def labels(row: dict[str, Any]) -> str:
        return (
            f'id="{row["id"]}",miner="{_escape(row["name"])}",org="{_escape(row["org__slug"])}",'
            f'site="{_escape(row["site__slug"])}",model="{_escape(row["model"])}",'
            f'driver="{_escape(row["driver"])}"'
        )

    for name, help_text, field in _GAUGES:
        yield f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"
        for row in rows:
            if row[field] is not None:
                yield f"{name}{{{labels(row)}}} {row[field]}\n"
    yield "# HELP rigwarden_miner_up 1 unless the miner is offline\n# TYPE rigwarden_miner_up gauge\n"
    for row in rows:
        yield f"rigwarden_miner_up{{{labels(row)}}} {0 if row['health'] == 'offline' else 1}\n"
    yield "# HELP rigwarden_miner_health 1 for the miner's current health\n# TYPE rigwarden_miner_health gauge\n"
    for row in rows:
        for health in _HEALTHS:
            value = 1 if row["health"] == health else 0
            yield f'rigwarden_miner_health{{{labels(row)},health="{health}"}} {value}\n'
    yield "# HELP rigwarden_miner_last_poll_timestamp_seconds Last successful poll\n"
    yield "# TYPE rigwarden_miner_last_poll_timestamp_seconds gauge\n"
    for row in rows:
        if row["latest__updated_at"] is not None:
            stamp = row["latest__updated_at"].timestamp()
            yield f"rigwarden_miner_last_poll_timestamp_seconds{{{labels(row)}}} {stamp:.0f}\n"


@declare(PUBLIC)  # its own authentication: METRICS_TOKEN or an API token (see module doc)
@require_GET
@never_cache
def miner_metrics(request: HttpRequest) -> HttpResponseBase:
    miners = _visible(request)
    if miners is None:
        response = HttpResponse(
            "miner metrics need Authorization: Bearer <METRICS_TOKEN> or Token <API token>\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    return StreamingHttpResponse(_lines(miners), content_type=CONTENT_TYPE)
