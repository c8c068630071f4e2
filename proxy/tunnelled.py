"""Proxied requests to miners a fleet node owns: through the node's control stream.

Same API, permission map, header rules, limits and audit as a direct rig (``proxy.asgi`` does
those before and after); here only the exchange differs. The request travels as a
``tunnel_request`` (``fleet.nodes.tunnel``) to whichever replica holds the node's socket, the
node checks the target and logs in with the credentials it holds, and the answer streams back
chunk by chunk under the node's credit window — never buffered whole. A browser that goes
away cancels the request on the node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fleet.nodes import tunnel
from proxy import access, headers, limits
from proxy.paths import PathRefused, split
from proxy.rigs import Rig

Opened = Callable[[int], Awaitable[None] | None]

_STATUS = {
    "auth_failed": 502,
    "timeout": 504,
    "busy": 503,
    "node_offline": 502,
    "unreachable": 502,
    "refused": 502,
    "too_large": 502,
}


def refusal(rig: Rig, exc: tunnel.TunnelError) -> access.Refusal:
    from proxy.asgi import CREDENTIALS_REJECTED

    node = rig.node_label or "its fleet node"
    message = {
        "auth_failed": CREDENTIALS_REJECTED,
        "timeout": "the miner did not answer in time",
        "busy": f"{node} is busy with other tunnels: try again",
        "node_offline": f"{node} is not connected",
        "unreachable": f"the miner is unreachable from {node}: {exc.message}",
        "refused": f"{node} refused the request: {exc.message}",
        "too_large": exc.message,
    }.get(exc.reason, f"the tunnel through {node} failed: {exc.message}")
    return access.Refusal(_STATUS.get(exc.reason, 502), message, detail=exc.message)


def _location(pairs: list[tuple[str, str]], rig: Rig) -> list[tuple[str, str]]:
    """The node sends a redirect on the miner as a path (it refuses others): via the proxy."""
    location = next((v for k, v in pairs if k == "location"), None)
    if location is None:
        return []
    path, _, query = location.partition("?")
    try:
        split(f"/api-proxy/miners/{rig.miner_id}{path}")
    except PathRefused as exc:
        raise access.Refusal(502, f"the miner redirected to a refused path: {exc}") from exc
    tail = f"?{query}" if query else ""
    return [("location", f"/api-proxy/miners/{rig.miner_id}{path}{tail}")]


async def _exchange(
    rig: Rig,
    method: str,
    path: str,
    query: str,
    forwarded: dict[str, str],
    body: bytes,
    send: Any,
    started: list[bool],
    opened: Opened,
) -> None:
    from proxy.asgi import send_capped_body

    assert rig.node_id is not None
    cap = int(limits.limit("RESPONSE_MAX_BYTES", limits.RESPONSE_MAX_BYTES))
    try:
        async with tunnel.http_request(
            rig.node_id,
            miner_id=rig.miner_id,
            method=method,
            path=path,
            query=query,
            headers=forwarded,
            body=body,
            timeout=limits.limit("TOTAL_TIMEOUT", limits.TOTAL_TIMEOUT),
        ) as reply:
            length = next((v for k, v in reply.headers if k == "content-length"), None)
            if length is not None and length.isdigit() and int(length) > cap:
                raise access.Refusal(502, f"the miner's response is over {cap} bytes")
            pairs = headers.response_headers(reply.headers) + _location(reply.headers, rig)
            if length is not None and length.isdigit():
                pairs.append(("content-length", length))
            before_end = opened(reply.status)
            started[0] = True
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
                }
            )
            await send_capped_body(send, reply.chunks(), cap, before_end)
    except tunnel.TunnelError as exc:
        raise refusal(rig, exc) from exc


async def _gone(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def forward(
    rig: Rig,
    request: Any,
    path: str,
    body: bytes,
    receive: Any,
    send: Any,
    started: list[bool],
    opened: Opened,
) -> None:
    """Answer the browser from the node; ``opened(status)`` runs when the miner answered
    (the audit), and what it returns is awaited before the last chunk."""
    forwarded = headers.request_headers(request.headers)
    work = asyncio.ensure_future(
        _exchange(rig, request.method, path, request.query, forwarded, body, send, started, opened)
    )
    gone = asyncio.ensure_future(_gone(receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the browser left: the tunnel closes, the node stops
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return
        work.result()
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
