"""Which headers cross the proxy, each way. Pure."""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_ALLOWED = frozenset({"accept", "accept-language", "content-type", "range"})
NEVER_FORWARDED = frozenset({"cookie", "authorization", "x-csrftoken", "forwarded", "host"})
RESPONSE_DROPPED = frozenset(
    {"set-cookie", "www-authenticate", "server", "x-powered-by", "content-length", "location"}
)
RESPONSE_ADDED: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "sandbox; default-src 'none'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("cross-origin-resource-policy", "same-origin"),
    ("referrer-policy", "no-referrer"),
)

Headers = Iterable[tuple[str, str]]


def _connection_named(headers: list[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name == "connection":
            named.update(token.strip().lower() for token in value.split(",") if token.strip())
    return named


def request_headers(incoming: Headers) -> dict[str, str]:
    """The browser's headers the miner may see: the allowlist minus hop-by-hop and whatever
    ``Connection`` names; never credentials or forwarding headers."""
    pairs = [(name.lower(), value) for name, value in incoming]
    dropped = HOP_BY_HOP | _connection_named(pairs) | NEVER_FORWARDED
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in dropped or name.startswith("x-forwarded-"):
            continue
        if name in REQUEST_ALLOWED or name.startswith("if-"):
            out[name] = value
    return out


def response_headers(incoming: Headers) -> list[tuple[str, str]]:
    """The miner's headers the browser may see, plus ours (which replace the miner's)."""
    pairs = [(name.lower(), value) for name, value in incoming]
    ours = {name for name, _ in RESPONSE_ADDED}
    dropped = HOP_BY_HOP | _connection_named(pairs) | RESPONSE_DROPPED | ours
    kept = [
        (name, value)
        for name, value in pairs
        if name not in dropped and not name.startswith("access-control-")
    ]
    return kept + list(RESPONSE_ADDED)
