"""The proxied path, exactly as the browser sent it, or a refusal. Pure.

Works on the raw request path (before percent-decoding), so an encoded slash or dot can't hide
a traversal from the checks; the path must already be in the one form normalisation keeps.
The rule itself lives in ``fleetnode.paths``: a node applies the same one to tunnelled calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetnode.paths import PathRefused, check, under_prefix

__all__ = ["ROUTE", "PathRefused", "Target", "check", "split", "under_prefix"]

ROUTE = re.compile(r"^/api-proxy/miners/(?P<id>[0-9]{1,18})(?P<rest>/.*)?$")


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
