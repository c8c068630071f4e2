"""API throttles: a bucket per token, per session user and per anonymous address, with rates
from the environment; and the production defaults the test settings don't show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from config.env import ConfigError, env_rate
from tests.accounts.support import issued_secret
from tests.conftest import OrgWorld
from tests.test_settings import run


@pytest.fixture
def token(org_a: OrgWorld) -> str:
    return issued_secret(org_a.users["owner"])


@pytest.fixture
def low_rates(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token": "3/minute", "user": "4/minute", "anon": "2/minute"},
    }


def _until_throttled(client: Client, path: str, limit: int, **headers: str) -> Any:
    for _ in range(limit):
        response = client.get(path, **headers)
        assert response.status_code == 200, response.content
    throttled = client.get(path, **headers)
    assert throttled.status_code == 429
    assert throttled["Content-Type"] == "application/json"
    assert "throttled" in throttled.json()["detail"]
    assert 1 <= int(throttled["Retry-After"]) <= 60
    return throttled


def test_a_token_has_its_own_bucket(org_a: OrgWorld, token: str, low_rates: None) -> None:
    _until_throttled(Client(), "/api/v1/me/", 3, HTTP_AUTHORIZATION=f"Token {token}")
    second = issued_secret(org_a.users["owner"], "second")
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {second}").status_code == 200


def test_a_session_user_has_a_bucket_apart_from_their_tokens(
    org_a: OrgWorld, token: str, low_rates: None
) -> None:
    session = Client()
    session.force_login(org_a.users["owner"])
    _until_throttled(session, "/api/v1/me/", 4)
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    other = Client()
    other.force_login(org_a.users["viewer"])
    assert other.get("/api/v1/me/").status_code == 200


def test_anonymous_callers_are_throttled_by_address(db: None, low_rates: None) -> None:
    json_accepted = {"HTTP_ACCEPT": "application/json"}
    _until_throttled(Client(REMOTE_ADDR="10.9.8.7"), "/api/schema/", 2, **json_accepted)
    assert Client(REMOTE_ADDR="10.9.8.6").get("/api/schema/", **json_accepted).status_code == 200


PROBE_API = (
    "import json, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    "from django.conf import settings as s;"
    "print(json.dumps([s.REST_FRAMEWORK['DEFAULT_THROTTLE_CLASSES'],"
    " s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], s.ALLOWED_HOSTS]))"
)


@pytest.mark.slow
def test_production_settings_throttle_with_env_configurable_rates(tmp_path: Path) -> None:
    """The test settings switch the rates off; the real ones, outside pytest, are on."""
    result = run(["-c", PROBE_API], {"API_RATE_TOKEN": "20/s"}, tmp_path)
    assert result.returncode == 0, result.stderr
    classes, rates, hosts = json.loads(result.stdout)
    assert [c.rsplit(".", 1)[1] for c in classes] == [
        "TokenRateThrottle",
        "UserRateThrottle",
        "AnonRateThrottle",
    ]
    assert rates == {"token": "20/s", "user": "1200/minute", "anon": "120/minute"}
    assert hosts == ["127.0.0.1", "localhost", "[::1]"], "testserver is the test client's alone"


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/m", "-1/s", "1.5/s", "10 / m"])
def test_a_bad_rate_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="API_RATE_USER"):
        env_rate("API_RATE_USER", "1/s", {"API_RATE_USER": value})


@pytest.mark.parametrize("value", ["20/s", "20/second", "1200/min", "5/Hour", " 9/d "])
def test_good_rates_are_taken(value: str) -> None:
    assert env_rate("X", "1/s", {"X": value}) == value.strip().lower()
    assert env_rate("X", "1/s", {}) == "1/s"


@pytest.mark.slow
def test_a_bad_rate_stops_the_start_with_one_line(tmp_path: Path) -> None:
    result = run(["manage.py", "check"], {"API_RATE_USER": "lots"}, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "API_RATE_USER" in result.stderr
