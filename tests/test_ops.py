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
