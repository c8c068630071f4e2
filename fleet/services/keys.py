"""Key rotation: re-wrap data keys under a new master key; re-encrypt under new data keys.

Both run while the system serves: readers find a blob's data key by the version in the blob,
and a data key's master by its kid, so old and new coexist until the rotation commits.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import Organization
from accounts.services.security import mfa_secrets_reseal
from fleet import crypto
from fleet.models import DataKey, Miner
from fleet.nodes.keys import node_secrets_reencrypt


@transaction.atomic
def master_key_rotate() -> dict[str, int]:
    """Re-wrap every data key not yet under the current master key (the old key must be in
    ``FLEET_MASTER_KEY_PREVIOUS``), and re-seal the MFA secrets sealed with it."""
    current = crypto.master_kid(settings.FLEET_MASTER_KEY)
    rewrapped = 0
    for key in DataKey.objects.select_for_update().exclude(master_kid=current):
        raw = crypto.unwrap(key)
        key.wrapped = crypto.wrap(raw, org_id=key.org_id, version=key.version)
        key.master_kid = current
        key.save(update_fields=["wrapped", "master_kid"])
        rewrapped += 1
    return {"data_keys": rewrapped, "mfa_authenticators": mfa_secrets_reseal()}


def data_keys_rotate(*, org: Organization | None = None) -> dict[str, int]:
    """A new data key per org; every secret re-encrypted under it; old keys deleted."""
    orgs = [org] if org is not None else list(Organization.unscoped.all())
    totals = {"orgs": 0, "secrets": 0}
    for each in orgs:
        totals["secrets"] += _rotate_org(each.pk)
        totals["orgs"] += 1
    return totals


@transaction.atomic
def _rotate_org(org_id: int) -> int:
    Organization.unscoped.select_for_update().filter(pk=org_id).first()
    miners = list(Miner.unscoped.select_for_update().filter(org_id=org_id, secret__isnull=False))
    plain = {
        m.pk: crypto.decrypt(m.secret or b"", org_id=org_id, label=m.secret_label) for m in miners
    }
    new = crypto.new_data_key(org_id)
    for miner in miners:
        miner.secret = crypto.encrypt(plain[miner.pk], org_id=org_id, label=miner.secret_label)
        miner.save(update_fields=["secret"])
    nodes = node_secrets_reencrypt(org_id)  # command keys, node data keys
    DataKey.objects.filter(org_id=org_id).exclude(pk=new.pk).delete()
    return len(miners) + nodes
