"""Real server processes for the control-stream tests: daphne on loopback ports, sharing the
test database and the Redis channel layer with the test process (and with each other)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.support import free_port, shared_database_url

ROOT = Path(__file__).resolve().parents[3]
DAPHNE = Path(sys.executable).parent / "daphne"
# as the Makefile and the container run it: frames up to 4 MiB reach the consumer, which
# closes anything over the protocol's 1 MiB with 4400 (daphne would just drop the TCP)
DAPHNE_ARGS = (
    "--websocket-max-message-size",
    str(4 * 1024 * 1024),
    "--websocket-max-frame-size",
    str(4 * 1024 * 1024),
)


test_database_url = shared_database_url
test_database_url.__test__ = False  # type: ignore[attr-defined]
__all__ = ["free_port", "test_database_url"]


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """``start()`` → the base URL of one more daphne process; all stopped at the end."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: the server processes share the Redis channel layer")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=test_database_url(),
        FLEET_TESTING="1",
        SECRET_KEY=django_settings.SECRET_KEY,
        FLEET_MASTER_KEY=base64.urlsafe_b64encode(django_settings.FLEET_MASTER_KEY).decode(),
        PYTHONDONTWRITEBYTECODE="1",
    )
    running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start() -> str:
        port = free_port()
        log_path = tmp_path / f"daphne-{port}.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [
                    str(DAPHNE),
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    *DAPHNE_ARGS,
                    "config.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running.append((server, log_path))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail("daphne exited: " + log_path.read_text()[-2000:])
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return base
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("daphne did not answer within 60 s: " + log_path.read_text()[-2000:])
            time.sleep(0.2)

    try:
        yield start
    finally:
        for server, _log in running:
            os.killpg(server.pid, signal.SIGTERM)
        for server, log in running:
            if os.environ.get("NODE_TEST_LOGS"):
                print(log.read_text()[-6000:])
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
