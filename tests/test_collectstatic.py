"""`make run` and the Docker image run ``collectstatic`` with the hashed, compressed storage:
every file a bundle refers to (an xterm bundle's ``sourceMappingURL``, a stylesheet's
``url()``) must be there, or the command stops and so does ``make run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not (ROOT / "static" / "vendor" / "xterm" / "xterm.js").exists(),
    reason="front-end assets not built (make assets)",
)
def test_collectstatic_builds_the_hashed_manifest(tmp_path: Path, settings: Any) -> None:
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = (tmp_path / "staticfiles.json").read_text()
    for name in ("vendor/xterm/xterm.js", "js/terminals.js", "js/term-splitters.js"):
        assert f'"{name}"' in manifest, name
