"""Command verification: only signed, fresh, never-seen commands by a trusted key run."""

from __future__ import annotations

import stat
import time

import pytest

from fleetnode import protocol
from fleetnode.state import State
from fleetnode.trust import Rejected, Trust
from tests.fleetnode.conftest import Signer


def trusting(state: State, *signers: Signer) -> Trust:
    trust = Trust(state)
    trust.welcome_keys([s.welcome_key() for s in signers])
    return trust


def rejected(trust: Trust, frame: dict) -> Rejected:
    with pytest.raises(Rejected) as info:
        trust.accept(frame)
    return info.value


def test_a_signed_fresh_command_is_accepted(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    command = trust.accept(signer.command("ping"))
    assert (command.kind, command.seq, command.kid) == ("ping", 1, signer.kid)


def test_bad_signature_is_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    frame = signer.command("reboot", {"miner_id": 1, "params": {}})
    frame["payload"]["miner_id"] = 2  # tampered after signing
    error = rejected(trust, frame)
    assert (error.category, error.command_id) == ("bad_signature", frame["command_id"])
    garbage = {**signer.command(), "sig": "not base64!"}
    assert rejected(trust, garbage).category == "bad_signature"


def test_a_signature_by_an_untrusted_key_under_a_trusted_kid_is_rejected(
    state: State, signer: Signer
) -> None:
    trust = trusting(state, signer)
    impostor = Signer(kid=signer.kid)
    assert rejected(trust, impostor.command()).category == "bad_signature"


def test_wrong_kid_is_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    other = Signer(kid="k9-other")
    assert rejected(trust, other.command()).category == "unknown_key"


def test_unsigned_command_is_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    frame = signer.command()
    del frame["sig"]
    assert rejected(trust, frame).category == "unsigned"


def test_expired_command_is_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    now = int(time.time())
    frame = signer.command(issued_at=now - 120, expires_at=now - 1)
    assert rejected(trust, frame).category == "expired"
    future = signer.command(issued_at=now + 3600, expires_at=now + 3660)
    assert rejected(trust, future).category == "future"


def test_replayed_and_older_seqs_are_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    first, second = signer.command(), signer.command()
    trust.accept(second)
    assert rejected(trust, second).category == "replayed"
    assert rejected(trust, first).category == "replayed"  # lower seq, never seen: still no


def test_seq_high_water_survives_a_restart_and_is_written_before_acting(
    state: State, signer: Signer
) -> None:
    trust = trusting(state, signer)
    frame = signer.command()
    trust.accept(frame)
    assert state.seq_hwm() == {signer.kid: 1}  # on disk as soon as accept() returns
    restarted = Trust(State(state.dir))
    assert rejected(restarted, frame).category == "replayed"
    assert restarted.accept(signer.command()).seq == 2


def test_malformed_commands_are_rejected_with_a_reason(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    for bad in (
        {"seq": 0},
        {"seq": True},
        {"seq": "3"},
        {"kind": "format_disk"},
        {"payload": []},
        {"issued_at": "now"},
        {"kid": "x" * 100},
    ):
        frame = {**signer.command(), **bad}
        assert rejected(trust, frame).command_id == frame["command_id"], bad
    no_id = signer.command()
    del no_id["command_id"]
    assert rejected(trust, no_id).command_id is None


def test_key_rotation_signed_by_a_trusted_key_adds_the_new_key(
    state: State, signer: Signer
) -> None:
    trust = trusting(state, signer)
    new = Signer(kid="k1-next")
    rotation = signer.command(
        "key_rotation", {"new_kid": new.kid, "new_public_key": protocol.b64encode(new.public)}
    )
    assert trust.rotate(trust.accept(rotation)) == new.kid
    assert trust.accept(new.command()).kid == new.kid
    assert set(Trust(State(state.dir)).keys) == {signer.kid, new.kid}  # persisted


def test_key_rotation_by_an_unknown_key_is_rejected(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    attacker, new = Signer(kid="k6-evil"), Signer(kid="k6-new")
    rotation = attacker.command(
        "key_rotation", {"new_kid": new.kid, "new_public_key": protocol.b64encode(new.public)}
    )
    assert rejected(trust, rotation).category == "unknown_key"
    assert rejected(trust, new.command()).category == "unknown_key"


def test_welcome_keys_are_trusted_on_first_contact_only(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    later = Signer(kid="k2-later")
    trust.welcome_keys([signer.welcome_key(), later.welcome_key()])
    assert set(trust.keys) == {signer.kid}
    swapped = {**signer.welcome_key(), "public_key": protocol.b64encode(later.public)}
    trust.welcome_keys([swapped])
    assert trust.keys[signer.kid] == signer.public
    trust.welcome_keys("garbage")
    trust.welcome_keys([{"kid": 3}, None, {"kid": "x", "public_key": "AAAA"}])
    assert set(trust.keys) == {signer.kid}


def test_welcome_can_retire_a_key_but_never_the_last(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    new = Signer(kid="k1-next")
    rotation = signer.command(
        "key_rotation", {"new_kid": new.kid, "new_public_key": protocol.b64encode(new.public)}
    )
    trust.rotate(trust.accept(rotation))
    trust.welcome_keys([signer.welcome_key(active=False), new.welcome_key()])
    assert set(trust.keys) == {new.kid}
    trust.welcome_keys([new.welcome_key(active=False)])
    assert set(trust.keys) == {new.kid}
    assert rejected(trust, signer.command()).category == "unknown_key"


def test_state_files_are_0600_in_a_0700_directory(state: State, signer: Signer) -> None:
    trust = trusting(state, signer)
    trust.accept(signer.command())
    state.sealing_key()
    assert stat.S_IMODE(state.dir.stat().st_mode) == 0o700
    files = sorted(p.name for p in state.dir.iterdir() if p.is_file())
    assert {"identity.key", "api_key", "node.json", "keys.json", "seq.json", "x25519.key"} <= set(
        files
    )
    for path in state.dir.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert state.check_permissions() == []
    (state.dir / "api_key").chmod(0o644)
    assert any("api_key" in p for p in state.check_permissions())
