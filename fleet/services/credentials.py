"""A miner's login, stored envelope-encrypted and handed to drivers only in memory."""

from __future__ import annotations

from fleet import crypto
from fleet.models import Miner
from miners import Credentials


def credentials_store(miner: Miner, *, username: str, password: str | None) -> None:
    """Set (or clear) the secret on a saved miner; bumps the version that keys token caches."""
    miner.username = username[:120]
    miner.secret = (
        crypto.encrypt(password, org_id=miner.org_id, label=miner.secret_label)
        if password is not None
        else None
    )
    miner.credential_version += 1
    miner.save(update_fields=["username", "secret", "credential_version"])


def credentials_for(miner: Miner) -> Credentials | None:
    if miner.secret is None:
        return None
    password = crypto.decrypt(miner.secret, org_id=miner.org_id, label=miner.secret_label)
    return Credentials(
        password=password, username=miner.username or None, version=miner.credential_version
    )
