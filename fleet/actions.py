"""The miner actions live in ``miners.actions`` (pure, shared with the fleet node); the
server's code keeps importing them from here."""

from miners.actions import (
    ACTIONS,
    POOL_SCHEMES,
    POOL_URL_PATTERN,
    WORKER_PATTERN,
    Action,
    ActionError,
    Call,
    Params,
    needed_capability,
    render_worker,
)

__all__ = [
    "ACTIONS",
    "POOL_SCHEMES",
    "POOL_URL_PATTERN",
    "WORKER_PATTERN",
    "Action",
    "ActionError",
    "Call",
    "Params",
    "needed_capability",
    "render_worker",
]
