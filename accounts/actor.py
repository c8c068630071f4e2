"""Who is acting: a person (with their IP), a fleet node, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import ActorType, User


@dataclass(frozen=True)
class Actor:
    type: str
    label: str
    user: User | None = None
    ip: str | None = None

    @classmethod
    def for_user(cls, user: User, ip: str | None = None) -> Actor:
        return cls(ActorType.USER, user.email, user, ip)

    @classmethod
    def for_request(cls, request: Any) -> Actor:
        return cls.for_user(request.user, client_ip(request))

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, label)

    @classmethod
    def node(cls, label: str, ip: str | None = None) -> Actor:
        return cls(ActorType.NODE, label, None, ip)


def client_ip(request: Any) -> str | None:
    """The peer address. X-Forwarded-For is ignored: trusting it lets anyone pick their IP."""
    meta = getattr(request, "META", {})
    ip = meta.get("REMOTE_ADDR") or None
    return ip if ip and _is_ip(ip) else None


def user_agent(request: Any) -> str:
    return str(getattr(request, "META", {}).get("HTTP_USER_AGENT", ""))[:300]


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
