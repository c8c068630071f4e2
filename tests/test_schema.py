"""The OpenAPI schema is valid with no warnings, is public (it describes no data), and the docs load nothing remote."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import OrgWorld

CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com")


def test_spectacular_validates_without_warnings() -> None:
    out = StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stdout=out, stderr=out
    )
    assert "Warning" not in out.getvalue()


@pytest.fixture
def signed_in(org_a: OrgWorld) -> Client:
    client = Client()
    client.force_login(org_a.users["viewer"])
    return client


def test_schema_is_served_to_a_signed_in_user(signed_in: Client) -> None:
    response = signed_in.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert "/api/v1/sites/" in paths and "/api/v1/tokens/" in paths
    assert "tokenAuth" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_schema_and_docs_are_public_but_the_api_is_not() -> None:
    anonymous = Client()
    schema = anonymous.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    assert anonymous.get("/api/docs/").status_code == 200
    assert anonymous.get("/api/v1/sites/").status_code in (401, 403)


def test_swagger_ui_is_served_locally(signed_in: Client) -> None:
    page = signed_in.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert not any(host in html for host in CDN_HOSTS), "Swagger UI must not load from a CDN"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for url in assets:
        assert url.startswith("/"), f"remote asset {url}"
        asset = signed_in.get(url)
        assert asset.status_code == 200, url
        body = b"".join(asset.streaming_content) if asset.streaming else asset.content
        if "?script" in url:  # the init script: points at our schema, nothing remote
            assert b"/api/schema/" in body
            assert not any(host.encode() in body for host in CDN_HOSTS)
