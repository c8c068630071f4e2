"""Method + path → what the proxy does: the permission a call needs, or a refusal.

The data and the rule live in ``miners.apimap`` (pure, shared with the fleet node's tunnel,
which may import ``miners`` but not ``proxy``); the proxy's code keeps importing them here.
"""

from miners.apimap import (
    ADMIN,
    ANTMINER,
    CREDENTIAL,
    MAPS,
    POOL_ACTION,
    POOLS,
    PREFIXES,
    PROTOOS,
    READ_METHODS,
    REFUSALS,
    UNMAPPED_IS_WRITE,
    UNSAFE_GET,
    Decision,
    classify,
    http_port,
)

__all__ = [
    "ADMIN",
    "ANTMINER",
    "CREDENTIAL",
    "MAPS",
    "POOLS",
    "POOL_ACTION",
    "PREFIXES",
    "PROTOOS",
    "READ_METHODS",
    "REFUSALS",
    "UNMAPPED_IS_WRITE",
    "UNSAFE_GET",
    "Decision",
    "classify",
    "http_port",
]
