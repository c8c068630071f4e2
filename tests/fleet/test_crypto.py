"""Envelope encryption of miner secrets: bound to org, row and field; rotation keeps it readable."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from django.core.management import call_command

from accounts.models import Organization, Site
from fleet import crypto
from fleet.models import DataKey, Miner
from fleet.services.credentials import credentials_for, credentials_store
from tests.conftest import OrgWorld


def _miner(world: OrgWorld, n: int = 1) -> Miner:
    site: Site = world.sites[0]
    return Miner.unscoped.create(
        org=world.org,
        site=site,
        identifier=f"serial:{world.org.slug}-{n}",
        name=f"rig {n}",
        host=f"10.0.0.{n}",
        port=80,
        driver="protoos",
    )


def test_secret_round_trips_and_is_not_stored_in_clear(org_a: OrgWorld) -> None:
    miner = _miner(org_a)
    credentials_store(miner, username="", password="hunter2-rig")
    stored = bytes(Miner.unscoped.get(pk=miner.pk).secret or b"")
    assert b"hunter2" not in stored and stored.startswith(b"e1")
    creds = credentials_for(Miner.unscoped.get(pk=miner.pk))
    assert creds is not None and creds.password == "hunter2-rig" and creds.version == 1
    assert "hunter2" not in repr(creds)


def test_tampered_secret_fails(org_a: OrgWorld) -> None:
    miner = _miner(org_a)
    credentials_store(miner, username="", password="pw-1")
    blob = bytearray(bytes(miner.secret or b""))
    blob[-1] ^= 1
    with pytest.raises(crypto.SecretError):
        crypto.decrypt(bytes(blob), org_id=org_a.org.pk, label=miner.secret_label)


def test_secret_moved_to_another_row_or_org_fails(org_a: OrgWorld, org_b: OrgWorld) -> None:
    one, two = _miner(org_a, 1), _miner(org_a, 2)
    credentials_store(one, username="", password="pw-one")
    with pytest.raises(crypto.SecretError):
        crypto.decrypt(one.secret or b"", org_id=org_a.org.pk, label=two.secret_label)
    with pytest.raises(crypto.SecretError):
        crypto.decrypt(one.secret or b"", org_id=org_b.org.pk, label=one.secret_label)


def test_each_org_has_its_own_data_key(org_a: OrgWorld, org_b: OrgWorld) -> None:
    credentials_store(_miner(org_a), username="", password="a")
    credentials_store(_miner(org_b), username="", password="b")
    keys = DataKey.objects.filter(active=True)
    assert {k.org_id for k in keys} == {org_a.org.pk, org_b.org.pk}
    assert len({bytes(k.wrapped) for k in keys}) == 2


def test_rotate_data_keys_keeps_secrets_readable(org_a: OrgWorld) -> None:
    miner = _miner(org_a)
    credentials_store(miner, username="", password="before-rotation")
    old = DataKey.objects.get(org=org_a.org, active=True)
    call_command("rotate_data_keys", "--org", org_a.org.slug)
    crypto.forget_keys()
    new = DataKey.objects.get(org=org_a.org, active=True)
    assert new.version == old.version + 1
    assert not DataKey.objects.filter(pk=old.pk).exists()
    miner.refresh_from_db()
    assert crypto.blob_version(bytes(miner.secret or b"")) == new.version
    assert credentials_for(miner).password == "before-rotation"  # type: ignore[union-attr]


def test_rotate_master_key_rewraps_and_the_old_key_can_go(org_a: OrgWorld, settings: Any) -> None:
    miner = _miner(org_a)
    credentials_store(miner, username="", password="survives-master-rotation")
    old_master = settings.FLEET_MASTER_KEY
    new_master = os.urandom(32)
    settings.FLEET_MASTER_KEY = new_master
    settings.FLEET_MASTER_KEYS_PREVIOUS = [old_master]
    crypto.forget_keys()
    call_command("rotate_master_key")
    key = DataKey.objects.get(org=org_a.org, active=True)
    assert key.master_kid == crypto.master_kid(new_master)
    settings.FLEET_MASTER_KEYS_PREVIOUS = []  # the operator removes the old key
    crypto.forget_keys()
    miner.refresh_from_db()
    assert credentials_for(miner).password == "survives-master-rotation"  # type: ignore[union-attr]
    # and a process without the new master can't open it
    settings.FLEET_MASTER_KEY = base64.b64decode(base64.b64encode(os.urandom(32)))
    crypto.forget_keys()
    with pytest.raises(crypto.SecretError):
        credentials_for(miner)


def test_first_key_is_made_once_per_org(org_a: OrgWorld) -> None:
    for n in range(3):
        credentials_store(_miner(org_a, n + 1), username="", password=str(n))
    assert DataKey.objects.filter(org=org_a.org).count() == 1
    assert Organization.unscoped.filter(pk=org_a.org.pk).exists()
