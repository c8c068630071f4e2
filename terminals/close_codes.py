"""Close codes of ``/ws/terminals/{session_id}/`` (docs/terminals.md)."""

CLOSE_NORMAL = 1000  # the remote shell exited
CLOSE_MALFORMED = 4400  # a frame that isn't one of the protocol's
CLOSE_UNAUTHENTICATED = 4401  # login expired: the session is parked, re-auth and reattach
CLOSE_FORBIDDEN = 4403  # no terminal:open at the host's site (any more)
CLOSE_NOT_FOUND = 4404  # no such session, or not yours
CLOSE_OTHER_REPLICA = 4409  # the session lives in another replica: route there
CLOSE_SESSION_GONE = 4410  # ended: idle, maximum length, grace expired, closed
CLOSE_HOST_KEY_CHANGED = 4412  # blocked until someone with terminal:manage re-trusts
CLOSE_SSH_FAILED = 4502  # unreachable, refused login, no shell
