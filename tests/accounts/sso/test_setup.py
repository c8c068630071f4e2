"""Discovery against the real provider, the sign-in page's button, the backend's token checks
and the break-glass command."""

from __future__ import annotations

import time
from io import StringIO
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ActivityEvent, LoginLockout, Membership, User
from accounts.sso import config
from accounts.sso.backend import SsoBackend
from tests.accounts.sso.conftest import CLIENT_ID, Provider, point_at
from tests.conftest import PASSWORD, OrgWorld

pytestmark = pytest.mark.django_db


@pytest.mark.slow  # starts the provider (node)
def test_discovery_reads_the_providers_document_and_caches_it(sso: Provider) -> None:
    document = config.discovery()
    assert document["authorization_endpoint"] == f"{sso.issuer}/auth"
    assert "S256" in document["code_challenge_methods_supported"]
    assert config.oidc_setting("OIDC_OP_JWKS_ENDPOINT") == f"{sso.issuer}/jwks"
    sso.process.send_signal(19)  # SIGSTOP: the cached document is still served
    try:
        assert config.discovery() == document
    finally:
        sso.process.send_signal(18)  # SIGCONT


@pytest.mark.slow  # starts the provider (node)
def test_a_wrong_issuer_or_a_dead_provider_is_a_clear_error(settings: Any, sso: Provider) -> None:
    point_at(settings, sso.issuer + "/realms/other")
    with pytest.raises(config.SsoUnavailable, match="can't be reached|calls itself"):
        config.discovery()
    point_at(settings, "http://127.0.0.2:9")
    with pytest.raises(config.SsoUnavailable, match="can't be reached"):
        config.discovery()
    point_at(settings, "id.example.com")
    with pytest.raises(config.SsoUnavailable, match="https:// URL"):
        config.discovery()


@pytest.mark.slow  # starts the provider (node)
def test_the_sign_in_page_offers_sso_only_when_it_is_configured(
    settings: Any, sso: Provider
) -> None:
    page = Client().get("/accounts/login/?next=/miners/").content.decode()
    assert "Sign in with SSO" in page and "/oidc/authenticate/?next=%2Fminers%2F" in page
    assert 'name="password"' in page
    settings.OIDC_BUTTON_LABEL = "Sign in with Keycloak"
    assert "Sign in with Keycloak" in Client().get("/accounts/login/").content.decode()
    settings.OIDC_ISSUER = ""
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with" not in page
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404


@pytest.mark.slow  # starts the provider (node)
def test_starting_sso_sends_state_nonce_and_pkce(sso: Provider) -> None:
    response = Client().get("/oidc/authenticate/?next=/users/")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{sso.issuer}/auth?")
    for part in (
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
        f"client_id={CLIENT_ID}",
    ):
        assert part in location
    assert "prompt=none" not in location
    assert "prompt=none" in Client().get("/oidc/authenticate/?prompt=none")["Location"]


@pytest.mark.slow  # starts the provider (node)
def test_a_forged_callback_is_refused_without_a_500(sso: Provider) -> None:
    client = Client()
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/?code=forged&state=not-ours")
    assert response.status_code == 400
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 302  # no flow started


def test_a_password_form_carrying_code_and_state_never_reaches_the_provider(
    settings: Any, org_a: OrgWorld
) -> None:
    point_at(settings, "http://127.0.0.2:9")
    client = Client()
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/?code=x&state=y",
        {"login": org_a.users["owner"].email, "password": PASSWORD},
    )
    assert response.status_code == 302 and "_auth_user_id" in client.session


@pytest.fixture
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(key: rsa.RSAPrivateKey, alg: str = "RS256", **claims: Any) -> str:
    payload = {"iss": "http://127.0.0.2:9", "aud": "rw", "sub": "s", "exp": time.time() + 60}
    return jwt.encode({**payload, **claims}, key, algorithm=alg, headers={"kid": "k"})


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"aud": "someone-else"}, "another client"),
        ({"aud": ["rw", "other"], "azp": "other"}, "another client"),
        ({"sub": ""}, "without a subject"),
        ({"nonce": "other"}, "Nonce"),
    ],
)
def test_the_id_token_must_be_for_us_from_our_issuer(
    settings: Any, signing_key: rsa.RSAPrivateKey, claims: dict[str, Any], problem: str
) -> None:
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "http://127.0.0.2:9", "rw"
    backend = SsoBackend()
    backend.retrieve_matching_jwk = lambda _token: signing_key.public_key()  # type: ignore[method-assign]
    good = token(signing_key, nonce="n")
    assert backend.verify_token(good, nonce="n")["sub"] == "s"
    with pytest.raises(SuspiciousOperation, match=problem):
        backend.verify_token(token(signing_key, **{"nonce": "n", **claims}), nonce="n")


def test_only_rs256_is_accepted(settings: Any, signing_key: rsa.RSAPrivateKey) -> None:
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "http://127.0.0.2:9", "rw"
    backend = SsoBackend()
    backend.retrieve_matching_jwk = lambda _token: signing_key.public_key()  # type: ignore[method-assign]
    with pytest.raises(SuspiciousOperation, match="does not match"):
        backend.verify_token(jwt.encode({"sub": "s"}, "secret-" * 6, algorithm="HS256"), nonce=None)


def test_reset_owner_restores_the_break_glass_account(org_a: OrgWorld) -> None:
    owner = org_a.users["owner"]
    User.objects.filter(pk=owner.pk).update(is_active=False)
    LoginLockout.objects.create(key=f"email:{owner.email}", failures=9)
    out = StringIO()
    call_command("reset_owner", "--email", owner.email, "--org", "alpha", stdout=out)
    password = out.getvalue().split("shown once): ")[1].strip()
    owner.refresh_from_db()
    assert owner.is_active and owner.check_password(password)
    assert not LoginLockout.objects.filter(key=f"email:{owner.email}").exists()
    assert ActivityEvent.unscoped.filter(org=org_a.org, verb="owner.break_glass_reset").exists()
    call_command(
        "reset_owner",
        "--email",
        "new-owner@alpha.example",
        "--org",
        "alpha",
        "--password",
        "a-long-break-glass-pass",
        stdout=StringIO(),
    )
    created = User.objects.get(email="new-owner@alpha.example")
    assert Membership.unscoped.get(user=created, org=org_a.org).role.slug == "owner"
    with pytest.raises(CommandError, match="No organization"):
        call_command("reset_owner", "--email", owner.email, "--org", "nope")
    with pytest.raises(CommandError, match="valid e-mail"):
        call_command("reset_owner", "--email", "not-an-email", "--org", "alpha")
