"""Configuration from the environment: bad values stop the process with one clear line."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config.env import ConfigError, env_bool, env_int, env_networks, env_str, env_url

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
PROBE = (  # print the two secrets the settings ended up with
    "import base64, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    "from django.conf import settings as s;"
    "print(s.SECRET_KEY); print(base64.b64encode(s.FLEET_MASTER_KEY).decode())"
)


def run(args: list[str], env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATA_DIR": str(data_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


BAD = {
    "DATABASE_URL": "nonsense",
    "PORT": "abc",
    "FLEET_MASTER_KEY": "short",
    "DISCOVERY_ALLOWED_NETWORKS": "999.1.1.1/8",
    "DEBUG": "maybe",
    "REDIS_URL": "redis://localhost:notaport/0",
    "LOG_LEVEL": "LOUD",
    "SECRET_KEY": "too-short",
    "SESSION_COOKIE_AGE": "-1",
}


@pytest.mark.slow
def test_bad_values_fail_manage_py_check_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    def check(item: tuple[str, str]) -> tuple[str, subprocess.CompletedProcess[str]]:
        name, value = item
        return name, run(["manage.py", "check"], {name: value}, tmp_path / name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, BAD.items()))
    for name, result in results:
        assert result.returncode != 0, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert "Traceback" not in result.stderr
        assert name in lines[0], (name, lines[0])


@pytest.mark.slow
def test_database_url_with_a_bad_port_is_a_config_error(tmp_path: Path) -> None:
    result = run(["manage.py", "check"], {"DATABASE_URL": "postgres://u@db:port/x"}, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "DATABASE_URL" in result.stderr


@pytest.mark.slow
def test_unwritable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run(["manage.py", "check"], {}, blocker / "data")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "DATA_DIR" in result.stderr


@pytest.mark.slow
def test_secret_files_are_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 50 + "\n")
    master = tmp_path / "master"
    master.write_text(GOOD_KEY + "\n")
    result = run(
        ["-c", PROBE],
        {"SECRET_KEY_FILE": str(secret), "FLEET_MASTER_KEY_FILE": str(master)},
        tmp_path / "d",
    )
    assert result.returncode == 0, result.stderr
    key, master_b64 = result.stdout.split()
    assert key == "s" * 50
    assert base64.b64decode(master_b64) == b"k" * 32
    assert not (tmp_path / "d" / "secret_key").exists(), "no dev secret when one is given"


@pytest.mark.parametrize("name", ["SECRET_KEY", "FLEET_MASTER_KEY"])
@pytest.mark.slow
def test_setting_both_x_and_x_file_is_an_error(tmp_path: Path, name: str) -> None:
    file = tmp_path / "value"
    file.write_text(GOOD_KEY)
    result = run(
        ["manage.py", "check"],
        {name: GOOD_KEY + "x" * 40, f"{name}_FILE": str(file)},
        tmp_path / "d",
    )
    assert result.returncode != 0
    assert f"{name}_FILE" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_secret_file_is_an_error(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check"], {"FLEET_MASTER_KEY_FILE": str(tmp_path / "nope")}, tmp_path / "d"
    )
    assert result.returncode != 0
    assert "FLEET_MASTER_KEY_FILE" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_generated_dev_secrets_are_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run(["-c", PROBE], {}, data)
    assert first.returncode == 0, first.stderr
    for name in ("secret_key", "master.key"):
        mode = stat.S_IMODE((data / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    second = run(["-c", PROBE], {}, data)
    assert second.stdout == first.stdout, "secrets must survive a restart"
    other = run(["-c", PROBE], {}, tmp_path / "elsewhere")
    assert other.stdout.split()[0] != first.stdout.split()[0], "each data dir gets its own secret"


# --- the parsers themselves, in-process ------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "env"),
    [
        (lambda e: env_bool("X", False, e), {"X": "maybe"}),
        (lambda e: env_int("X", 1, environ=e), {"X": "1.5"}),
        (lambda e: env_int("X", 1, minimum=1, environ=e), {"X": "0"}),
        (lambda e: env_int("X", 1, maximum=10, environ=e), {"X": "11"}),
        (lambda e: env_url("X", ("redis",), e), {"X": "http://example.com"}),
        (lambda e: env_url("X", ("redis",), e), {"X": "redis://"}),
        (lambda e: env_networks("X", e), {"X": "10.0.0.0/8, nonsense"}),
        (lambda e: env_str("X", None, e), {"X": "a", "X_FILE": "/etc/hostname"}),
    ],
)
def test_env_parsers_refuse_bad_values(call: object, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="X"):
        call(env)  # type: ignore[operator]


def test_env_parsers_accept_good_values(tmp_path: Path) -> None:
    file = tmp_path / "v"
    file.write_text("  from-a-file \n")
    assert env_str("X", None, {"X_FILE": str(file)}) == "from-a-file"
    assert env_bool("X", False, {"X": "Yes"}) is True
    assert env_bool("X", True, {"X": "off"}) is False
    assert env_int("X", 5, environ={"X": " 42 "}) == 42
    assert env_int("X", 5, environ={}) == 5
    assert env_networks("X", {"X": "10.1.2.3/8, fd00::/8"}) == ["10.0.0.0/8", "fd00::/8"]
    assert env_url("X", ("redis",), {"X": " redis://h:6379/0 "}) == "redis://h:6379/0"


# --- more start-up checks: hosts, SMTP, a DATA_DIR shared by web, worker and beat ---------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS"),
        ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "EMAIL_USE_SSL"),
        ({"EMAIL_USE_TLS": "sometimes"}, "EMAIL_USE_TLS"),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/14", "CHANNEL_REDIS_MAX_CONNECTIONS": "5"},
            "CHANNEL_REDIS_MAX_CONNECTIONS",
        ),
    ],
)
@pytest.mark.slow
def test_more_bad_values_fail_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and named in result.stderr, result.stderr


@pytest.mark.slow
def test_smtp_credentials_and_tls_come_from_the_environment(tmp_path: Path) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("hunter2-but-longer\n")
    probe = (
        "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
        "from django.conf import settings as s;"
        "print(s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL)"
    )
    env = {
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD_FILE": str(password),
        "EMAIL_USE_TLS": "true",
    }
    result = run(["-c", probe], env, tmp_path / "d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mailer", "hunter2-but-longer", "True", "False"]


def test_a_secret_file_another_process_is_still_writing_is_waited_for(tmp_path: Path) -> None:
    """web, worker and beat share DATA_DIR and start together: one creates the file, the others
    may open it before the value is in it."""
    import threading

    from config.env import persistent_secret

    path = tmp_path / "secret_key"
    path.touch(mode=0o600)  # created by the first process, not yet written
    writer = threading.Timer(0.2, lambda: path.write_text("the-value\n"))
    writer.start()
    try:
        assert persistent_secret(path) == "the-value"
    finally:
        writer.join()


def test_a_secret_file_left_empty_is_still_an_error(tmp_path: Path) -> None:
    from config.env import _read_secret

    path = tmp_path / "master.key"
    path.touch()
    with pytest.raises(ConfigError, match="empty"):
        _read_secret(path, wait_seconds=0.1)
