"""Unknown URLs: JSON for API callers, the 404 page for people."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import OrgWorld, api_client_for


@pytest.mark.parametrize("path", ["/api/v2/", "/api/v1/no-such-thing/", "/api/nope"])
def test_unknown_api_urls_are_json_404s(org_a: OrgWorld, path: str) -> None:
    response = api_client_for(org_a.users["viewer"]).get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


def test_unknown_pages_are_the_html_404_page(org_a: OrgWorld) -> None:
    client = Client()
    client.force_login(org_a.users["viewer"])
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
