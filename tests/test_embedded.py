"""Embedded mode end to end: no DATABASE_URL, no REDIS_URL, a fresh DATA_DIR, the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("embedded-data")
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "FLEET_MASTER_KEY",
            "DJANGO_SETTINGS_MODULE",
        )
        and not key.startswith(("PYTEST", "FLEET_", "DATABASE", "REDIS"))
    }
    env.update({"DATA_DIR": str(data_dir), "PYTHONDONTWRITEBYTECODE": "1"})
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    assert (data_dir / "rigwarden.sqlite3").exists(), "embedded mode must use SQLite under DATA_DIR"

    port = free_port()
    log = (data_dir / "daphne.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail("daphne exited: " + (data_dir / "daphne.log").read_text()[-2000:])
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("daphne did not answer within 60 s")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_sign_in_page_is_served(embedded_server: str) -> None:
    status, html = _get(embedded_server + "/accounts/login/")
    assert status == 200, html[-2000:]
    assert 'name="login"' in html and 'name="password"' in html and "csrfmiddlewaretoken" in html


def test_health_and_readiness_without_redis(embedded_server: str) -> None:
    assert _get(embedded_server + "/healthz")[0] == 200
    status, body = _get(embedded_server + "/readyz")
    assert status == 200, body
    assert '"redis": "not configured"' in body


def test_anonymous_dashboard_goes_to_sign_in(embedded_server: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(embedded_server + "/", timeout=10)
    assert exc.value.code == 302
    assert exc.value.headers["Location"].startswith("/accounts/login/")
