"""`make run` ends with the address and the demo login, not with migration lines or the exec line.

The real Makefile runs with a stand-in virtualenv whose python is the real one and whose daphne
only says it started: migrate, collectstatic, the demo seed and a small demo fleet run for real
(embedded SQLite in a temporary DATA_DIR), the server doesn't (tests/test_demo.py runs it).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
# npm and collectstatic would write into the shared checkout (static/vendor, staticfiles/)
NOT_REMADE = ["-o", "static/vendor/.stamp", "-o", "collectstatic"]


def stand_in_venv(root: Path) -> Path:
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    scripts = {
        "python": f'#!/bin/sh\nexec {sys.executable} "$@"\n',
        "pip": "#!/bin/sh\nexit 0\n",
        "daphne": '#!/bin/sh\necho "DAPHNE STARTED $*"\n',
    }
    for name, text in scripts.items():
        path = venv / "bin" / name
        path.write_text(text)
        path.chmod(0o755)
    for stamp in (".base", ".dev"):
        (venv / stamp).touch()  # newer than requirements/*.txt: nothing to install
    return venv


def make_run(tmp_path: Path, **env: str) -> list[str]:
    venv = stand_in_venv(tmp_path)
    environ = (
        {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
            and not key.startswith(("PYTEST", "MAKE"))
        }
        | {"DATA_DIR": str(tmp_path / "data"), "PORT": "8765"}
        | {
            "DEMO_PROTO": "2",
            "DEMO_ANTMINER": "1",
            "DEMO_SIM_BASE": f"127.79.{random.randrange(256)}.1",
        }
        | {"DEMO_SIM_PORT_OFFSET": str(random.randrange(20000, 28000, 10))}
        | env
    )
    result = subprocess.run(
        ["make", "--no-print-directory", *NOT_REMADE, f"VENV={venv}", "run"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_make_run_prints_the_address_and_the_demo_login_last(tmp_path: Path) -> None:
    lines = make_run(tmp_path)
    assert lines[-1].startswith("DAPHNE STARTED -b 127.0.0.1 -p 8765 ")
    assert lines[-1].endswith(" config.asgi:application")
    assert lines[-4] == "Demo fleet: 3 simulated miners (stop with Ctrl-C)"
    assert lines[-3] == (
        "Rigwarden on http://127.0.0.1:8765/  (embedded mode: SQLite in "
        f"{tmp_path / 'data'}, in-process tasks)"
    )
    assert lines[-2] == "Demo sign-in: owner@demo.rigwarden.local / hashrate-demo-2026"
    output = "\n".join(lines)
    assert "Applying " not in output and "Operations to perform" not in output  # migrate -v0
    assert "manage.py" not in output and "exec " not in output  # no echoed command lines
    assert (tmp_path / "data" / "rigwarden.sqlite3").exists()


def test_make_run_without_the_demo_says_how_to_create_an_owner(tmp_path: Path) -> None:
    lines = make_run(tmp_path, DEMO="0")
    assert lines[-1].startswith("DAPHNE STARTED")
    assert lines[-5].startswith("Rigwarden on http://127.0.0.1:8765/")
    assert lines[-4] == "No demo seeded. Create your first org and owner:"
    assert "create_user" in lines[-2]
