"""What the proxy knows about one miner, copied out of the database before any I/O."""

from __future__ import annotations

from dataclasses import dataclass

from miners import Credentials


@dataclass(frozen=True, slots=True)
class Rig:
    miner_id: int
    org_id: int
    site_id: int
    name: str
    driver: str
    host: str
    port: int
    scheme: str | None
    credentials: Credentials | None
    node_label: str | None = None
    """Set when a fleet node owns the miner (the server can't dial it itself)."""
    node_id: int | None = None
    """That node: the proxy goes through its control stream (``proxy.tunnelled``)."""

    @property
    def token_key(self) -> str:
        version = self.credentials.cache_key if self.credentials else "none"
        return f"rw:proxy:token:{self.miner_id}:{self.host}:{self.port}:{version}"

    @property
    def login_lock(self) -> str:
        """One login per rig at a time across the deployment: rigs allow one token."""
        return f"rw:proxy:login:{self.miner_id}:{self.host}:{self.port}"
