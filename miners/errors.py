"""One exception hierarchy for every driver.

Callers (the poller, the proxy, the CLI, the fleet node) branch on the *kind* of failure,
never on a driver's transport details: an offline rig, a wrong password and a firmware that
refuses a value need different UI and different retry policies. Each error carries the
firmware's own message and code where the firmware gave one, so operators see what the
miner said rather than our paraphrase.
"""

from __future__ import annotations


class MinerError(Exception):
    """Base of every driver error.

    `message` is human readable (the firmware's text when there is one), `code` the
    firmware's machine code (e.g. ``DEFAULT_PASSWORD_ACTIVE``, ``B100``), `status` the HTTP
    status when the failure came from an HTTP reply.
    """

    kind = "error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def to_dict(self) -> dict[str, object]:
        """Shape stored by the server and printed by the CLI."""
        return {
            "kind": self.kind,
            "message": self.message,
            "code": self.code,
            "status": self.status,
        }


class Unreachable(MinerError):
    """Nothing usable answered: refused, reset, DNS, TLS failure, rig rebooting."""

    kind = "unreachable"


class Timeout(Unreachable):
    """The call's deadline passed. A subclass of `Unreachable` because callers that only
    care whether the rig is online treat both alike; those that care can tell them apart."""

    kind = "timeout"


class Rebooting(Unreachable):
    """A known rig that is restarting: it answers its identity (ProtoOS `/pairing/info`) but
    drops everything else for a while. A subclass of `Unreachable` (callers that only ask
    "online?" treat it as offline); the poller can show "rebooting" instead of "offline"."""

    kind = "rebooting"


class AuthFailed(MinerError):
    """The rig rejected our credentials (or a fresh login right after a 401)."""

    kind = "auth_failed"


class Unsupported(MinerError):
    """The device (or this driver for it) can't do what was asked."""

    kind = "unsupported"


class BadResponse(MinerError):
    """The rig answered, but not in a shape we can use (garbage, wrong JSON, 5xx)."""

    kind = "bad_response"


class Rejected(MinerError):
    """The firmware understood the request and refused it (400/409/422/503): out-of-range
    power target, too many pools, update already running. Carries the firmware's reason."""

    kind = "rejected"


class DefaultPasswordActive(Rejected):
    """ProtoOS refuses some writes (403 ``DEFAULT_PASSWORD_ACTIVE``) until the factory
    password has been changed; the UI turns this into "set a password first". The device
    also reports ``MinerStatus.default_password_active`` from then on (pool writes, which the
    firmware allows in this state, keep working)."""

    kind = "default_password_active"
