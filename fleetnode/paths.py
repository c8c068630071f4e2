"""The one rule for a path forwarded to a miner's API, shared by the proxy (``proxy.paths``)
and the node's HTTP tunnel (``fleetnode.tunnel``). Pure.

Works on the raw path (before percent-decoding), so an encoded slash or dot can't hide a
traversal; the path must already be in the one form normalisation keeps.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

_SAFE = re.compile(r"^[A-Za-z0-9\-._~/%!$&'()*+,;=:]*$")
_BAD_ESCAPES = re.compile(r"%(2f|5c|2e|00|0a|0d|40|25)", re.IGNORECASE)


class PathRefused(ValueError):
    """Not a path the proxy forwards; the message says why."""


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
