"""Ops endpoints, metrics, security headers, cookies and CSRF on session-authenticated writes."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.accounts.conftest import sign_in as shared_sign_in
from tests.conftest import PASSWORD, OrgWorld
from tests.test_settings import run

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when we return: nothing listens there


def sign_in(client: Client, email: str) -> None:
    assert shared_sign_in(client, email, PASSWORD).status_code == 302  # type: ignore[attr-defined]


# --- health --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_ok_with_database_and_redis(settings: object) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"] == ("ok" if settings.REDIS_URL else "not configured")  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_down(settings: object) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_dead_port()}/0"  # type: ignore[attr-defined]
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["redis"] != "ok"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    import config.views

    class DeadCursor:
        def __enter__(self) -> DeadCursor:
            raise OperationalError("connection refused")

        def __exit__(self, *exc: object) -> None:
            return None

    class DeadConnection:
        def cursor(self) -> DeadCursor:
            return DeadCursor()

    monkeypatch.setattr(config.views, "connection", DeadConnection())
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "OperationalError"


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_expose_django_db_cache_and_login_counters(org_a: OrgWorld) -> None:
    client = Client()
    sign_in(client, org_a.users["viewer"].email)
    client.get("/")  # a page: queries + session cache reads
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for metric in (
        "django_http_requests_total_by_method_total",
        "django_http_responses_total_by_status_total",
        "django_db_execute_total",
        "django_db_new_connections_total",
        "rigwarden_login_attempts_total",
    ):
        assert re.search(rf"^{metric}\{{", text, re.M), metric
    assert re.search(r'^rigwarden_login_attempts_total\{[^}]*result="success"', text, re.M)


def test_cache_metrics_are_exported(db: None) -> None:
    from django.core.cache import cache

    cache.set("rw-metrics-probe", 1)
    cache.get("rw-metrics-probe")
    cache.get("rw-metrics-missing")
    text = Client().get("/metrics").content.decode()
    assert re.search(r"^django_cache_get_total\{", text, re.M)


def _fleet_rows(world: OrgWorld) -> None:
    from fleet.models import Miner, MinerHealth

    for i, site in enumerate(world.sites):
        Miner.unscoped.create(
            org=world.org,
            site=site,
            identifier=f"serial:metrics-{world.org.slug}-{i}",
            name=f"rig-{i}",
            host=f"10.8.0.{i + 1}",
            port=80,
            driver="antminer",
            health=MinerHealth.OK,
        )


TENANT_SERIES = re.compile(r"^rigwarden_fleet_(miners|hashrate_ths|power_watts)\{", re.M)


def test_metrics_without_a_token_carry_no_org_or_site(
    org_a: OrgWorld, org_b: OrgWorld, settings: object
) -> None:
    """Per-tenant business figures are not public: out of the box /metrics still serves the
    process, poller and node metrics (Prometheus works), but no series labelled org or site."""
    settings.METRICS_TOKEN = None  # type: ignore[attr-defined]
    _fleet_rows(org_a)
    _fleet_rows(org_b)
    response = Client().get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "rigwarden_poll_seconds_bucket" in text and "rigwarden_fleet_nodes" in text
    assert not TENANT_SERIES.search(text), TENANT_SERIES.search(text)
    assert not re.search(r'\b(org|site)="', text)
    for slug in (org_a.org.slug, org_b.org.slug):
        assert f'"{slug}"' not in text


def test_metrics_with_the_token_add_the_fleet_series_per_org_and_site(
    org_a: OrgWorld, org_b: OrgWorld, settings: object
) -> None:
    settings.METRICS_TOKEN = "scrape-me-0123456789"  # type: ignore[attr-defined]
    _fleet_rows(org_a)
    _fleet_rows(org_b)
    assert Client().get("/metrics").status_code == 401
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text  # the process's own, too
    for world in (org_a, org_b):
        for site in world.sites:
            assert (
                f'rigwarden_fleet_miners{{health="ok",org="{world.org.slug}",'
                f'site="{site.slug}"}} 1.0'
            ) in text
    assert text.count("# TYPE rigwarden_fleet_miners gauge") == 1


# --- headers and cookies -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/healthz", "/api/v1/me/", "/does-not-exist/"]
)
def test_security_headers(path: str) -> None:
    response = Client().get(path)
    csp = response["Content-Security-Policy"]
    assert (
        "default-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "object-src 'none'" in csp
    )
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_session_and_csrf_cookies(org_a: OrgWorld) -> None:
    client = Client()
    sign_in(client, org_a.users["viewer"].email)
    session = client.cookies["sessionid"]
    assert session["httponly"] is True
    assert session["samesite"].lower() in ("lax", "strict")
    assert client.cookies["csrftoken"]["samesite"].lower() in ("lax", "strict")


def test_hsts_and_secure_cookies_when_tls_is_on(tmp_path: Path) -> None:
    probe = (
        "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
        "from django.conf import settings as s;"
        "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    assert run(["-c", probe], {"SECURE_TLS": "1"}, tmp_path / "a").stdout.split() == [
        "31536000",
        "True",
        "True",
    ]
    assert run(["-c", probe], {}, tmp_path / "b").stdout.split() == ["0", "False", "False"]


def test_hsts_header_on_https_when_enabled(db: None, settings: object) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000  # type: ignore[attr-defined]
    response = Client().get("/healthz", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


# --- CSRF on browser (session) writes to the API -------------------------------------------------


def test_session_api_writes_need_csrf(org_a: OrgWorld) -> None:
    client = APIClient(enforce_csrf_checks=True)
    sign_in(client, org_a.users["owner"].email)
    site = org_a.sites[0]

    refused = client.patch(f"/api/v1/sites/{site.pk}/", {"name": "csrf"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 403

    token = client.cookies["csrftoken"].value
    ok = client.patch(
        f"/api/v1/sites/{site.pk}/", {"name": "with token"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert ok.status_code == 200
    # reads need no token
    assert client.get("/api/v1/sites/").status_code == 200


def test_cross_origin_session_writes_are_refused(org_a: OrgWorld) -> None:
    client = APIClient(enforce_csrf_checks=True)
    sign_in(client, org_a.users["owner"].email)
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/tokens/",
        {"name": "x"},
        format="json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="http://evil.example",
    )
    assert response.status_code == 403


def test_token_api_writes_need_no_csrf(org_a: OrgWorld) -> None:
    from accounts.actor import Actor
    from accounts.services.tokens import api_token_create

    secret = api_token_create(actor=Actor.system("t"), user=org_a.users["owner"], name="ci").secret
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert (
        client.patch(
            f"/api/v1/sites/{org_a.sites[0].pk}/", {"name": "by token"}, format="json"
        ).status_code
        == 200
    )


# --- ops endpoints behind Host validation and the TLS redirect -----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_ops_endpoints_answer_health_checks_by_ip_and_over_plain_http(
    settings: object, path: str
) -> None:
    """Docker's health check calls 127.0.0.1:8000 and Prometheus calls web:8000; neither is in a
    production ALLOWED_HOSTS, and neither speaks TLS inside the container."""
    settings.ALLOWED_HOSTS = ["rigwarden.example.com"]  # type: ignore[attr-defined]
    settings.SECURE_SSL_REDIRECT = True  # type: ignore[attr-defined]
    response = Client().get(path, HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200, response.content[:200]
    assert response["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    # everything else still checks the Host and redirects to TLS
    assert Client().get("/accounts/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    page = Client().get("/accounts/login/", HTTP_HOST="rigwarden.example.com")
    assert page.status_code == 301 and page["Location"].startswith("https://")


# --- over-long URLs ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_query_string_over_8_kib_is_a_414_below_the_servers_own_limit() -> None:
    """daphne (Twisted) drops the connection on a request line over 16 KiB; below that, a query
    string over 8 KiB gets a clear 414 from the app instead of whatever the view makes of it."""
    long_cursor = "%E0%A0%80" * 1000  # 9000 bytes
    api = Client().get(f"/api/v1/miners/?cursor={long_cursor}")
    assert api.status_code == 414
    assert api.json() == {"detail": "The query string is over 8192 bytes."}
    page = Client().get(f"/accounts/login/?next={'a' * 8193}")
    assert page.status_code == 414 and page["Content-Type"].startswith("text/plain")
    assert page["X-Content-Type-Options"] == "nosniff"
    # at the limit: the usual answers (sign-in needed; the page)
    assert Client().get(f"/api/v1/miners/?cursor={'a' * 8185}").status_code in {401, 403}
    assert Client().get(f"/accounts/login/?next={'a' * 8187}").status_code == 200
