"""Typed environment parsing.

Every setting can be given as ``X`` or as ``X_FILE`` (a path whose contents are the value), so
secrets can come from Docker/Kubernetes secret files. A bad value stops the process at start
with a message that names the variable, instead of failing later in a request.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    """A configuration value is missing or malformed."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(
    name: str, default: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    env = os.environ if environ is None else environ
    file_name = env.get(f"{name}_FILE")
    if file_name:
        if name in env:
            raise ConfigError(f"{name} and {name}_FILE are both set; use one")
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}") from exc
    value = env.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, None, environ)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    raw = env_str(name, None, environ)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    raw = env_str(name, None, environ)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(
    name: str, schemes: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str | None:
    raw = env_str(name, None, environ)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise ConfigError(
            f"{name} must be a URL starting with one of {', '.join(s + '://' for s in schemes)}"
        )
    try:
        urlsplit(value).port  # noqa: B018 - parsing is the check: "host:abc" raises here
    except ValueError as exc:
        raise ConfigError(f"{name} has an invalid port: {exc}") from exc
    return value


def env_networks(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list of CIDRs, normalised; any malformed entry is a start-up error."""
    networks = []
    for item in env_list(name, [], environ):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ConfigError(
                f"{name}: {item!r} is not a network (expected CIDR like 10.0.0.0/24)"
            ) from exc
    return networks


_RATE = re.compile(r"([1-9][0-9]*)/(s|sec|second|m|min|minute|h|hour|d|day)")


def env_rate(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """A request rate for DRF's throttles: ``N/second``, ``N/minute``, ``N/hour`` or ``N/day``
    (``s``, ``m``, ``h``, ``d`` and ``sec``, ``min`` also do)."""
    raw = env_str(name, None, environ)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if not _RATE.fullmatch(value):
        raise ConfigError(f"{name}={raw!r} is not a rate (e.g. 1200/minute or 20/s)")
    return value


def persistent_secret(path: Path, nbytes: int = 32) -> str:
    """Read a generated secret, creating it once with mode 0600 (dev/embedded mode only)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {path}: {exc.strerror} (is DATA_DIR a writable directory?)"
        ) from exc
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def _read_secret(path: Path, wait_seconds: float = 2.0) -> str:
    """web, worker and beat start together on one DATA_DIR: the file another process has just
    created may not hold its value yet, so an empty file is re-read for a moment first."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ConfigError(f"{path} is empty; delete it to regenerate")
        time.sleep(0.05)
