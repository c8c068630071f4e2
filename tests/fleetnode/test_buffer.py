"""The telemetry buffer: on disk, in order, bounded, every loss counted; backoff bounds."""

from __future__ import annotations

import json
import random
import stat

from fleetnode import protocol
from fleetnode.backoff import REFUSED_CAP_S, Backoff, refused
from fleetnode.state import State
from fleetnode.telemetry import MAX_BATCH_OUTCOMES, TelemetryBuffer, split_outcomes


def outcome(miner_id: int, pad: int = 0) -> dict:
    return {
        "miner_id": miner_id,
        "started": 1.0,
        "seconds": 0.1,
        "detail": "summary",
        "status": {"hostname": "x" * pad} if pad else None,
        "error": None if pad else {"kind": "timeout", "message": "no answer"},
    }


def test_batches_survive_a_restart_in_order(state: State) -> None:
    buffer = TelemetryBuffer(state)
    seqs = [buffer.add([outcome(i)])[0] for i in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]
    buffer.ack(2)
    again = TelemetryBuffer(State(state.dir))
    assert again.pending() == [1, 3, 4, 5]
    assert again.next_seq == 6
    frame = json.loads(again.load(3) or "")
    assert frame == {"type": "telemetry_batch", "batch_seq": 3, "outcomes": [outcome(3)]}
    for path in (state.dir / "buffer").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_bound_drops_the_oldest_and_counts_them(state: State) -> None:
    buffer = TelemetryBuffer(state, max_batches=3)
    for i in range(1, 8):
        buffer.add([outcome(i)])
    assert buffer.pending() == [5, 6, 7]
    assert buffer.dropped == 4
    assert TelemetryBuffer(State(state.dir)).dropped == 4  # persisted
    buffer.drop(5)  # refused for good by the server
    assert (buffer.pending(), buffer.dropped) == ([6, 7], 5)


def test_the_byte_bound_holds(state: State) -> None:
    buffer = TelemetryBuffer(state, max_batches=1000, max_bytes=protocol.MAX_FRAME_BYTES)
    for i in range(12):
        buffer.add([outcome(i, pad=200_000)])
    assert buffer.bytes <= protocol.MAX_FRAME_BYTES
    assert buffer.dropped == 12 - len(buffer)


def test_the_servers_telemetry_seq_wins(state: State) -> None:
    buffer = TelemetryBuffer(state)
    for i in range(4):
        buffer.add([outcome(i)])
    assert buffer.server_has(2) == 2
    assert buffer.pending() == [3, 4]
    assert buffer.server_has(50) == 2  # server ahead: a restored backup of the state dir
    assert buffer.add([outcome(9)]) == [51]


def test_big_cycles_split_into_frames_under_1_mib() -> None:
    outcomes = [outcome(i, pad=3000) for i in range(1200)]
    chunks = list(split_outcomes(outcomes))
    assert [o for c in chunks for o in c] == outcomes
    for chunk in chunks:
        assert len(chunk) <= MAX_BATCH_OUTCOMES
        frame = protocol.dump_frame({"type": "telemetry_batch", "batch_seq": 1, "outcomes": chunk})
        assert len(frame.encode()) <= protocol.MAX_FRAME_BYTES
    huge = list(split_outcomes([outcome(1, pad=2 * protocol.MAX_FRAME_BYTES)]))
    assert huge[0][0]["status"] is None and huge[0][0]["error"]["kind"] == "bad_response"


def test_backoff_is_full_jitter_within_exponential_bounds() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(7))
    ceilings, delays = [], []
    for _ in range(12):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next())
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # jittered, not in step
    backoff.reset()
    assert backoff.ceiling() == 1.0
    many = [Backoff(base=1.0, cap=60.0, rng=random.Random(s)) for s in range(200)]
    for b in many:
        for _ in range(10):
            b.next()
    spread = [b.next() for b in many]
    assert max(spread) <= 60 and min(spread) >= 0 and max(spread) - min(spread) > 30


def test_a_refused_connect_is_retried_within_seconds_and_still_counts() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(3))
    waits = [backoff.next_refused() for _ in range(20)]  # a server restarting for a while
    assert all(0 <= w <= REFUSED_CAP_S for w in waits) and max(waits) > 1
    assert backoff.ceiling() == 60.0  # another failure now backs off fully


async def test_refused_tells_a_refused_connect_from_other_failures() -> None:
    import aiohttp

    from tests.support import free_port

    async with aiohttp.ClientSession() as http:
        try:
            await http.get(f"http://127.0.0.1:{free_port()}/")
        except aiohttp.ClientConnectorError as exc:
            assert refused(exc)
        else:
            raise AssertionError("nothing listens there")
    assert not refused(TimeoutError()) and not refused(aiohttp.ClientPayloadError("cut"))
