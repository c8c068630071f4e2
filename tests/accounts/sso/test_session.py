"""Keeping SSO sessions honest: re-validation, JSON 401s, WebSocket 4401 — and password
sessions left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.sso.backend import BACKEND_PATH
from accounts.sso.session import sso_login_current
from config.asgi import application
from tests.conftest import OrgWorld

ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


@pytest.fixture(autouse=True)
def _sso(settings: Any) -> None:
    settings.OIDC_ISSUER = "http://127.0.0.2:9"
    settings.OIDC_CLIENT_ID = "rw"


def sso_client(user: Any, *, expires_in: float) -> Client:
    client = Client()
    client.force_login(user, backend=BACKEND_PATH)
    session = client.session
    session["oidc_id_token_expiration"] = time.time() + expires_in
    session.save()
    return client


@pytest.mark.django_db
def test_a_fresh_sso_session_passes(org_a: OrgWorld) -> None:
    assert sso_client(org_a.users["viewer"], expires_in=300).get("/users/").status_code == 200


@pytest.mark.django_db
def test_a_due_session_is_revalidated_silently(org_a: OrgWorld) -> None:
    response = sso_client(org_a.users["viewer"], expires_in=-1).get("/users/?page=2")
    assert response.status_code == 302
    assert response["Location"] == "/oidc/authenticate/?next=%2Fusers%2F%3Fpage%3D2&prompt=none"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"},
        {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/miners/"},
        {"HTTP_ACCEPT": "application/json"},
    ],
)
def test_xhr_and_htmx_get_a_json_401_with_the_reauth_url(
    org_a: OrgWorld, headers: dict[str, str]
) -> None:
    response = sso_client(org_a.users["viewer"], expires_in=-1).get("/users/", **headers)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "reauthenticate"
    assert body["reauth_url"].startswith("/oidc/authenticate/?next=")
    if "HTTP_HX_REQUEST" in headers:
        assert response["HX-Redirect"] == body["reauth_url"]
        assert "next=%2Fminers%2F" in body["reauth_url"]


@pytest.mark.django_db
def test_the_api_answers_json_401_too(org_a: OrgWorld) -> None:
    response = sso_client(org_a.users["viewer"], expires_in=-1).get("/api/v1/miners/")
    assert response.status_code == 401
    assert response.json()["code"] == "reauthenticate"


@pytest.mark.django_db
def test_a_form_post_gets_a_page_not_a_redirect_off_site(org_a: OrgWorld) -> None:
    response = sso_client(org_a.users["admin"], expires_in=-1).post("/sites/create/", {"name": "x"})
    assert response.status_code == 401
    assert b"Your sign-in has expired" in response.content


@pytest.mark.django_db
def test_password_sessions_are_never_touched(org_a: OrgWorld) -> None:
    client = Client()
    client.force_login(org_a.users["viewer"], backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/users/").status_code == 200
    assert sso_login_current(client.session)


@pytest.mark.django_db
def test_switching_sso_off_ends_sso_sessions(settings: Any, org_a: OrgWorld) -> None:
    client = sso_client(org_a.users["viewer"], expires_in=300)
    settings.OIDC_ISSUER = ""
    assert not sso_login_current(client.session)


def _headers(client: Client) -> list[tuple[bytes, bytes]]:
    return [*ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


@pytest.mark.django_db(transaction=True)
async def test_websockets_close_4401_when_the_sso_login_is_due(org_a: OrgWorld) -> None:
    due = await sync_to_async(sso_client)(org_a.users["viewer"], expires_in=-1)
    socket = WebsocketCommunicator(
        application, "/ws/live/", headers=await sync_to_async(_headers)(due)
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert (await socket.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4401}
    fresh = await sync_to_async(sso_client)(org_a.users["viewer"], expires_in=300)
    socket = WebsocketCommunicator(
        application, "/ws/live/", headers=await sync_to_async(_headers)(fresh)
    )
    assert (await socket.connect(timeout=5))[0]
    assert await socket.receive_nothing(timeout=0.5)
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_open_socket_closes_4401_once_the_login_is_due(
    org_a: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet import consumers

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.3)
    client = await sync_to_async(sso_client)(org_a.users["viewer"], expires_in=300)
    socket = WebsocketCommunicator(
        application, "/ws/live/", headers=await sync_to_async(_headers)(client)
    )
    assert (await socket.connect(timeout=5))[0]

    def expire() -> None:
        session = client.session
        session["oidc_id_token_expiration"] = time.time() - 1
        session.save()

    await sync_to_async(expire)()
    assert (await socket.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4401}
