"""The proxied path, exactly as the browser sent it, or a refusal. Pure.

Works on the raw request path (before percent-decoding), so an encoded slash or dot can't hide
a traversal from the checks; the path must already be in the one form normalisation keeps.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote

ROUTE = re.compile(r"^/api-proxy/miners/(?P<id>[0-9]{1,18})(?P<rest>/.*)?$")
_SAFE = re.compile(r"^[A-Za-z0-9\-._~/%!$&'()*+,;=:]*$")
_BAD_ESCAPES = re.compile(r"%(2f|5c|2e|00|0a|0d|40|25)", re.IGNORECASE)


class PathRefused(ValueError):
    """Not a path the proxy forwards; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    miner_id: int
    path: str
    """The upstream path, e.g. ``/api/v1/system`` (still percent-encoded as received)."""


def split(raw_path: str) -> Target:
    """Miner id and upstream path from the raw request path (no query string)."""
    match = ROUTE.match(raw_path)
    if match is None or not match.group("rest"):
        raise PathRefused("not a proxy path: /api-proxy/miners/<id>/<native API path>")
    rest = match.group("rest")
    check(rest)
    return Target(int(match.group("id")), rest)


def check(path: str) -> None:
    """Refuse anything but a plain, already-normal absolute path."""
    if "\\" in path:
        raise PathRefused("backslash in path")
    if "@" in path:
        raise PathRefused("'@' in path")
    if "\r" in path or "\n" in path or "\x00" in path:
        raise PathRefused("control character in path")
    if _BAD_ESCAPES.search(path):
        raise PathRefused("encoded slash, dot, backslash, '@', '%' or control character")
    if not _SAFE.match(path):
        raise PathRefused("character not allowed in a path")
    decoded = unquote(path)
    segments = decoded.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise PathRefused("dot segment in path")
    if "//" in decoded:
        raise PathRefused("empty path segment")
    trimmed = decoded[:-1] if decoded.endswith("/") and len(decoded) > 1 else decoded
    if posixpath.normpath(decoded) != trimmed or not decoded.startswith("/"):
        raise PathRefused("path changes under normalisation")


def under_prefix(path: str, prefix: str) -> str | None:
    """``path`` relative to ``prefix`` (e.g. ``/system`` of ``/api/v1/system``), else None."""
    if path == prefix or path == prefix + "/":
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return None
