"""ProtoOS REST API (`/api/v1/...`): routing, bearer auth, the default-password gate, writes.

Behaviour follows miner-apis.md §1 where firmware and the OpenAPI spec disagree: errors are
`{"error": {"code", "message"}}`, a login revokes every other access token (a refresh does
not), while the factory password is active most writes answer 403 DEFAULT_PASSWORD_ACTIVE
(pool writes stay allowed), and a rebooting rig answers `/pairing/info` while every other
route drops the connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from aiohttp import web

from miners.sim import proto_actions
from miners.sim import proto_payloads as payloads
from miners.sim.spec import PROTO_FACTORY_PASSWORD
from miners.sim.state import Miner
from miners.sim.web import Call, Hooks, HttpError, Router, json_response, message, same_secret

routes = Router("/api/v1")
SECRET = os.urandom(32)
BOOT_ROUTES = frozenset({"/api/v1/pairing/info"})
"""What a rebooting rig still answers (the rest drops the connection until it has booted)."""
PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Proto OS</title>'
    b'</head><body><div id="root">Proto OS</div><noscript>Proto OS needs JavaScript.'
    b"</noscript></body></html>"
)


class ProtoApi:
    """Dispatches one request to a ProtoOS miner; instances only carry the fleet hooks."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    @staticmethod
    def answers_while_booting(miner: Miner, request: web.BaseRequest) -> bool:
        return request.method in ("GET", "HEAD") and request.path.rstrip("/") in BOOT_ROUTES

    async def dispatch(self, miner: Miner, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/"):
            if request.method in ("GET", "HEAD"):
                return web.Response(body=PAGE, content_type="text/html", charset="utf-8")
            return _error(HttpError(404, "NOT_FOUND", f"no route for {path}"))
        found = routes.match(path.rstrip("/"))
        if found is None:
            return _error(HttpError(404, "NOT_FOUND", f"no route for {path}"))
        methods, params = found
        route = methods.get("GET" if request.method == "HEAD" else request.method)
        if route is None:
            response = _error(HttpError(405, "METHOD_NOT_ALLOWED", f"{request.method} {path}"))
            response.headers["Allow"] = ", ".join(sorted(methods))
            return response
        call = Call(miner, request, self.hooks, params)
        try:
            if not route.public:
                _authorize(call)
            if route.gated and miner.factory:
                raise HttpError(
                    403,
                    "DEFAULT_PASSWORD_ACTIVE",
                    "Change the default password before changing this setting",
                )
            return await route.handler(call)
        except HttpError as exc:
            return _error(exc)


def _error(exc: HttpError) -> web.Response:
    response = json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="proto"'
    return response


# -- tokens --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_JWT_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')


def _jwt(kind: str, now: float, ttl: float) -> str:
    """A JWT-shaped opaque token: clients may decode it, only the miner's copy makes it valid."""
    claims = {
        "sub": "admin",
        "typ": kind,
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": secrets.token_hex(8),
    }
    body = f"{_JWT_HEADER}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    sig = hmac.new(SECRET, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(sig)}"


def _issue(m: Miner, now: float, login: bool = True) -> str:
    """Mint an access token. A login revokes every other access token and the old refresh
    token (one session per rig); a refresh adds a token and leaves the others valid."""
    token = _jwt("access", now, m.timing.token_ttl)
    m.add_access_token(token, now + m.timing.token_ttl, revoke_others=login)
    if login:
        m.refresh_token = _jwt("refresh", now, m.timing.refresh_ttl)
        m.refresh_exp = now + m.timing.refresh_ttl
    return token


def _authorize(call: Call) -> None:
    header = call.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "UNAUTHORIZED", "Missing bearer token")
    if not call.miner.access_valid(token.strip(), call.now):
        raise HttpError(401, "UNAUTHORIZED", "Invalid or expired token")


def _password_ok(m: Miner, candidate: Any) -> bool:
    if not isinstance(candidate, str) or m.has_fault("wrong_password"):
        return False
    return same_secret(candidate, m.password)


def _new_password(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or len(value) < 8:
        raise HttpError(400, "INVALID_REQUEST", f"{field} must be a string of 8+ characters")
    if value == PROTO_FACTORY_PASSWORD:
        raise HttpError(400, "INVALID_REQUEST", "the factory password cannot be reused")
    return value


@routes.route("POST", "/auth/login", public=True)
async def login(call: Call) -> web.Response:
    data = await call.body_object()
    if not isinstance(data.get("password"), str):
        raise HttpError(400, "INVALID_REQUEST", "password is required")
    if not _password_ok(call.miner, data["password"]):
        raise HttpError(401, "UNAUTHORIZED", "Invalid password")
    access = _issue(call.miner, call.now)
    return json_response({"access_token": access, "refresh_token": call.miner.refresh_token})


@routes.route("POST", "/auth/refresh", public=True)
async def refresh(call: Call) -> web.Response:
    data = await call.body_object()
    token = data.get("refresh_token")
    if not isinstance(token, str):
        raise HttpError(400, "INVALID_REQUEST", "refresh_token is required")
    m = call.miner
    if (
        m.refresh_token is None
        or not same_secret(token, m.refresh_token)
        or call.now >= m.refresh_exp
    ):
        raise HttpError(401, "UNAUTHORIZED", "Invalid or expired refresh token")
    return json_response({"access_token": _issue(m, call.now, login=False)})


@routes.route("POST", "/auth/logout")
async def logout(call: Call) -> web.Response:
    call.miner.revoke_tokens()
    return message("Logged out")


@routes.route("PUT", "/auth/password", public=True)
async def set_first_password(call: Call) -> web.Response:
    m = call.miner
    if m.password_set:  # also a factory rig with a label password: change it instead
        raise HttpError(403, "FORBIDDEN", "A password has already been set")
    m.password = _new_password(await call.body_object(), "password")
    m.factory = False
    return message("Password set")


@routes.route("PUT", "/auth/change-password")
async def change_password(call: Call) -> web.Response:
    data = await call.body_object()
    m = call.miner
    if not _password_ok(m, data.get("current_password")):
        raise HttpError(400, "INVALID_REQUEST", "current_password is incorrect")
    m.password = _new_password(data, "new_password")
    m.factory = False
    m.revoke_tokens()
    return message("Password changed")


# -- public reads --------------------------------------------------------------------------


@routes.route("GET", "/system", public=True)
async def system(call: Call) -> web.Response:
    return json_response(payloads.system_info(call.miner, call.now))


@routes.route("GET", "/system/status", public=True)
async def system_status(call: Call) -> web.Response:
    m = call.miner
    return json_response({"onboarded": not m.factory, "password_set": m.password_set})


@routes.route("GET", "/pairing/info", public=True)
async def pairing_info(call: Call) -> web.Response:
    return json_response({"mac": call.miner.mac, "cb_sn": call.miner.serial})


@routes.route("GET", "/network", public=True)
async def network(call: Call) -> web.Response:
    return json_response(payloads.network_info(call.miner))


@routes.route("GET", "/hardware", public=True)
async def hardware(call: Call) -> web.Response:
    return json_response(payloads.hardware_info(call.miner, call.now))


@routes.route("GET", "/hashboards", public=True)
async def hashboards(call: Call) -> web.Response:
    return json_response(payloads.hashboards_info(call.miner))


@routes.route("GET", "/hardware/psus", public=True)
async def hardware_psus(call: Call) -> web.Response:
    return json_response({"psus-info": payloads.psus(call.miner, call.now)})


@routes.route("GET", "/power-supplies", public=True)
async def power_supplies(call: Call) -> web.Response:
    return json_response(
        {
            "psus_info": payloads.psus(call.miner, call.now, state=call.miner.field),
            "psu_update_status": {"available_firmware": [], "psu_fw_status": []},
        }
    )


@routes.route("GET", "/system/ssh", public=True)
async def ssh_status(call: Call) -> web.Response:
    return json_response({"ssh-status": {"enabled": bool(call.miner.setting("ssh", False))}})


@routes.route("GET", "/system/telemetry", public=True)
async def telemetry_service(call: Call) -> web.Response:
    enabled = bool(call.miner.setting("telemetry_service", True))
    return json_response(
        {"enabled": enabled, "message": f"Telemetry is {'enabled' if enabled else 'disabled'}"}
    )


@routes.route("GET", "/system/tag", public=True)
async def get_tag(call: Call) -> web.Response:
    tag = call.miner.setting("tag", None)
    if tag is None:
        return message("No system tag is set", 404)
    return json_response(tag)


proto_actions.register(routes)
