"""``fleetnode enroll``: register with a one-use code, show the fingerprint, wait for an
operator to confirm it, store the api key.

Interrupting the wait is safe: running ``enroll`` again with the same state directory resumes
waiting for the same registration (the code is spent; it is not needed again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fleetnode.backoff import Backoff
from fleetnode.gateway import Gateway, GatewayError
from fleetnode.protocol import fingerprint, public_bytes
from fleetnode.state import NodeConfig, State

log = logging.getLogger("fleetnode.enroll")

POLL_BASE_S = 2.0
POLL_CAP_S = 30.0
DEFAULT_WAIT_S = 24 * 3600.0  # an unconfirmed registration expires after 24 h on the server


class EnrollError(RuntimeError):
    """Enrollment can't go on; the message tells the operator what to do (exit 1)."""


class EnrollUsage(EnrollError):
    """The command line lacks what enrollment needs (exit 2, like any bad usage)."""


class EnrollRevoked(EnrollError):
    """The server revoked (or rejected) this registration: waiting can't help (exit 3)."""


def revoked_seen(state: State) -> bool:
    """Whether this state dir's node was told it is revoked (a refused registration, or the
    control stream closed with 4403)."""
    last = state.status()
    close = last.get("last_close")
    return bool(last.get("revoked")) or (isinstance(close, dict) and close.get("code") == 4403)


def mark_revoked(state: State) -> None:
    """``status`` reads it: the node is revoked, not enrolled nor awaiting confirmation."""
    try:
        state.set_status({**state.status(), "revoked": True, "revoked_seen_at": time.time()})
    except OSError as exc:
        log.warning("can't write status.json: %s", exc)


async def enroll(
    state: State,
    *,
    server: str,
    code: str | None,
    name: str,
    ca_file: str | None = None,
    wait_s: float = DEFAULT_WAIT_S,
    say: Callable[[str], None] = print,
    backoff: Backoff | None = None,
) -> NodeConfig:
    if state.config() is not None and revoked_seen(state):
        raise EnrollRevoked(
            f"the node in {state.dir} was revoked by the server; enroll a new one with a new "
            "code and another --state-dir"
        )
    if state.api_key():
        config = state.config()
        raise EnrollError(
            f"{state.dir} already holds an enrolled node"
            f"{f' (node {config.node_id} at {config.server})' if config else ''}; "
            "use another --state-dir to enroll a new one"
        )
    key = state.identity(create=True)
    config = state.config()
    if config is not None and config.server == server:
        say(f"Resuming: node {config.node_id} is registered and awaiting confirmation.")
    else:
        if not code:
            raise EnrollUsage("--code is required (create one on the server's Fleet nodes page)")
        try:
            registration = await Gateway(server, ca_file=ca_file).register(
                key, code=code, name=name
            )
        except GatewayError as exc:
            raise EnrollError(f"registration refused: {exc}") from exc
        local = fingerprint(public_bytes(key))
        if registration.fingerprint != local:
            raise EnrollError(
                f"the server reports fingerprint {registration.fingerprint}, this node's key "
                f"is {local}: something between you and the server changed the key. Stop here."
            )
        config = NodeConfig(server, registration.node_id, name, local, ca_file)
        state.set_config(config)
    say(f"Node id:     {config.node_id}")
    say(f"Fingerprint: {config.fingerprint}")
    say("Compare it with the fingerprint on the server's Fleet nodes page, then confirm there.")
    say("Waiting for confirmation…")
    api_key = await wait_for_api_key(
        Gateway(server, ca_file=config.ca_file),
        state,
        config,
        wait_s=wait_s,
        backoff=backoff or Backoff(base=POLL_BASE_S, cap=POLL_CAP_S),
    )
    state.set_api_key(api_key)
    say(f"Confirmed. The api key is stored in {state.path('api_key')}.")
    say("Start the agent with: python -m fleetnode run" + _state_arg(state))
    return config


def _state_arg(state: State) -> str:
    from fleetnode.state import DEFAULT_STATE_DIR

    return "" if str(state.dir) == DEFAULT_STATE_DIR else f" --state-dir {state.dir}"


async def wait_for_api_key(
    gateway: Gateway, state: State, config: NodeConfig, *, wait_s: float, backoff: Backoff
) -> str:
    key = state.identity()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await gateway.credentials(key, node_id=config.node_id)
        except GatewayError as exc:
            if exc.status == 410:
                raise EnrollError(
                    "the server already issued this node's api key (is another copy of this "
                    "state directory running?). Revoke the node on the server and enroll again."
                ) from exc
            if exc.status == 403:
                mark_revoked(state)
                raise EnrollRevoked(
                    f"the server revoked this registration: {exc}. Enroll again with a new "
                    "code and another --state-dir."
                ) from exc
            if exc.status in {400, 401, 404}:
                raise EnrollError(f"the server refused this node: {exc}") from exc
            if exc.status != 409:
                log.warning("%s; retrying", exc)
        if time.monotonic() >= deadline:
            raise EnrollError(
                "nobody confirmed the node in time; run `enroll` again to keep waiting"
            )
        await asyncio.sleep(max(0.2, backoff.next()))
