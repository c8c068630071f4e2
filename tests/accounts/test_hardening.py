"""Client IP behind proxies, metrics auth, personal events reaching the org's log."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory

from accounts.actor import Actor, client_ip
from accounts.models import ActivityEvent, TrackedSession
from accounts.services.security import session_revoke
from tests.conftest import OrgWorld


def _request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings) -> None:
    settings.TRUSTED_PROXY_NETWORKS = []
    assert client_ip(_request("203.0.113.9", "1.2.3.4")) == "203.0.113.9"


def test_forwarded_for_from_a_trusted_proxy_gives_the_rightmost_untrusted_hop(settings) -> None:
    settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    # the client tried to spoof 1.2.3.4; the proxy appended the real peer 198.51.100.7
    assert client_ip(_request("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.3")) == "198.51.100.7"
    assert client_ip(_request("10.0.0.2", "garbage")) == "10.0.0.2"
    assert client_ip(_request("10.0.0.2")) == "10.0.0.2"


def test_metrics_token_is_required_when_configured(client, settings) -> None:
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert response.status_code == 200 and b"django_http_requests" in response.content


@pytest.mark.django_db
def test_session_revoke_lands_in_the_owners_org_log(org_a: OrgWorld) -> None:
    user = org_a.users["viewer"]
    session = TrackedSession.objects.create(session_key="k" * 32, user=user, ip="192.0.2.1")
    session_revoke(actor=Actor.for_user(user), session=session)
    event = ActivityEvent.unscoped.get(verb="session.revoke")
    assert event.org_id == org_a.org.pk


def test_sealed_values_round_trip_and_are_bound_to_their_purpose() -> None:
    from accounts.crypto import SealError, seal, unseal

    sealed = seal("JBSWY3DPEHPK3PXP", purpose="a")
    assert "JBSWY3DP" not in sealed
    assert unseal(sealed, purpose="a") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealError):
        unseal(sealed, purpose="b")
    with pytest.raises(SealError):
        unseal(sealed[:-4] + "AAAA", purpose="a")


def test_totp_secret_is_stored_sealed(org_a: OrgWorld) -> None:
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP

    user = org_a.users["owner"]
    TOTP.activate(user, "JBSWY3DPEHPK3PXP")
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert stored.startswith("v1:") and "JBSWY3DP" not in stored
    from allauth.mfa.adapter import get_adapter

    assert get_adapter().decrypt(stored) == "JBSWY3DPEHPK3PXP"


def test_only_swagger_may_use_inline_styles(client, org_a: OrgWorld) -> None:
    client.force_login(org_a.users["viewer"])
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert "style-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    assert "unsafe-inline" not in client.get("/")["Content-Security-Policy"]
