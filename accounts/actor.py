"""Who is acting: a person (with their IP), a fleet node, or the system itself."""

from __future__ import annotations

import ipaddress
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
    """The client's address for audit and lockout.

    X-Forwarded-For is believed only when the peer is one of ``TRUSTED_PROXIES``, and then the
    rightmost address that isn't itself a trusted proxy wins — anything left of it is whatever
    the client chose to send.
    """
    meta: dict[str, Any] = getattr(request, "META", {})
    ip: str | None = meta.get("REMOTE_ADDR") or None
    if not ip or not _is_ip(ip):
        return None
    if not _trusted(ip):
        return ip
    hops: list[str] = [
        hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_ip(hop):
            return ip
        if not _trusted(hop):
            return hop
    return ip


def _trusted(ip: str) -> bool:
    from django.conf import settings

    networks = settings.TRUSTED_PROXY_NETWORKS
    if not networks:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


def user_agent(request: Any) -> str:
    return str(getattr(request, "META", {}).get("HTTP_USER_AGENT", ""))[:300]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
