"""HTTP Digest authentication (RFC 2617, MD5, qop=auth) for the Antminer web CGI.

aiohttp has no digest support. Bitmain's lighttpd only speaks MD5 with qop=auth (older ones
no qop), so that is all this implements. The challenge is kept per device and reused with an
increasing nonce count, so a busy device doesn't pay a 401 round trip on every request; a
stale nonce simply yields another 401 and a fresh challenge.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from miners.errors import AuthFailed

ANTMINER_REALM = "antMiner Configuration"

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(slots=True)
class Challenge:
    realm: str
    nonce: str
    qop: str | None = None
    opaque: str | None = None
    algorithm: str = "MD5"
    nc: int = 0


def parse_challenge(header: str | None) -> Challenge | None:
    """The Digest challenge in a WWW-Authenticate header, or None if there isn't one."""
    if not header or not header.lstrip().lower().startswith("digest"):
        return None
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(header.lstrip()[6:])
    }
    if "realm" not in params or "nonce" not in params:
        return None
    qops = [q.strip() for q in (params.get("qop") or "").split(",") if q.strip()]
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        qop="auth" if "auth" in qops else None,
        opaque=params.get("opaque"),
        algorithm=params.get("algorithm") or "MD5",
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def authorization(
    challenge: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str | None = None,
) -> str:
    """The Authorization header answering `challenge` for one request (bumps its nonce
    count)."""
    challenge.nc += 1
    ha1 = _md5(f"{username}:{challenge.realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.qop:
        nc = f"{challenge.nc:08x}"
        cnonce = cnonce or os.urandom(8).hex()
        response = _md5(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:{challenge.qop}:{ha2}")
        parts += [f"qop={challenge.qop}", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{challenge.nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)


class Reply(Protocol):
    """What ``exchange`` needs of an HTTP response (an aiohttp ``ClientResponse`` is one)."""

    status: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    def release(self) -> Any: ...


R = TypeVar("R", bound=Reply)


async def exchange(
    send: Callable[[str | None], Awaitable[R]],
    challenge: Challenge | None,
    username: str,
    password: str,
    method: str,
    uri: str,
    remember: Callable[[Challenge | None], None],
) -> R:
    """One request behind digest auth, streamed by the caller: ``send(authorization)`` answers
    the known ``challenge`` (none yet: no header), a 401 is answered once with its fresh
    challenge (given to ``remember``), and a second 401 is ``AuthFailed`` (``remember(None)``:
    the credentials are wrong, not the nonce). Shared by the server's proxy and the node's
    tunnel."""
    for attempt in range(2):
        auth = None
        if challenge is not None:
            auth = authorization(challenge, username, password, method, uri)
        reply = await send(auth)
        if reply.status != 401:
            return reply
        fresh = parse_challenge(reply.headers.get("WWW-Authenticate"))
        reply.release()
        if fresh is None:
            raise AuthFailed("the miner answered 401 without a digest challenge", status=401)
        if attempt == 1:
            break  # a fresh challenge answered and still refused: wrong credentials
        challenge = fresh
        remember(fresh)
    remember(None)
    raise AuthFailed(f"web login refused for user {username!r}", status=401)
