"""Telemetry batches on disk until the server acknowledges them.

Every batch is written to ``buffer/<batch_seq>.json`` before it is sent, and deleted when a
``batch_ack`` names it (or the server's ``telemetry_seq`` in ``welcome`` says it already has
it). So a node that is offline, or restarts, re-sends what the server is missing, in order.
The buffer is bounded by count and bytes: past either bound the oldest batches go, and every
batch that goes unsent is counted (``dropped``, persisted, shown by ``status`` and
``/metrics``) — never silently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetnode.protocol import MAX_FRAME_BYTES, dump_frame
from fleetnode.state import State, ensure_dir, write_atomic

DEFAULT_MAX_BATCHES = 2000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Room for the frame's envelope around the outcomes.
FRAME_BUDGET = MAX_FRAME_BYTES - 4096
MAX_BATCH_OUTCOMES = 1000  # the server takes at most 5000 per batch


class TelemetryBuffer:
    def __init__(
        self,
        state: State,
        *,
        max_batches: int = DEFAULT_MAX_BATCHES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.state = state
        self.dir = ensure_dir(ensure_dir(state.dir) / "buffer")
        self.max_batches = max(1, max_batches)
        self.max_bytes = max(MAX_FRAME_BYTES, max_bytes)
        meta = state.read_json("telemetry.json", {})
        self.next_seq = max(1, int(meta.get("next_batch_seq", 1)))
        self.dropped = max(0, int(meta.get("dropped", 0)))
        self._sizes: dict[int, int] = {}
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                self._sizes[int(path.stem)] = path.stat().st_size
        if self._sizes:
            self.next_seq = max(self.next_seq, max(self._sizes) + 1)

    # --- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def pending(self) -> list[int]:
        return sorted(self._sizes)

    def load(self, seq: int) -> str | None:
        try:
            return self._file(seq).read_text("utf-8")
        except OSError:
            self._sizes.pop(seq, None)
            return None

    # --- writing --------------------------------------------------------------------------
    def add(self, outcomes: list[dict[str, Any]]) -> list[int]:
        """Store ``outcomes`` as one or more batches (each frame under 1 MiB); their seqs."""
        seqs = []
        for chunk in split_outcomes(outcomes):
            seq = self.next_seq
            self.next_seq += 1
            frame = dump_frame({"type": "telemetry_batch", "batch_seq": seq, "outcomes": chunk})
            data = frame.encode("utf-8")
            self._save_meta()
            write_atomic(self._file(seq), data)
            self._sizes[seq] = len(data)
            seqs.append(seq)
        self._enforce_bounds()
        return seqs

    def ack(self, seq: int) -> bool:
        if seq not in self._sizes:
            return False
        self._remove(seq)
        return True

    def drop(self, seq: int) -> None:
        """The server refused this batch for good: forget it, and count it."""
        if seq in self._sizes:
            self._remove(seq)
            self.dropped += 1
            self._save_meta()

    def server_has(self, telemetry_seq: int) -> int:
        """The server stored everything up to ``telemetry_seq``: forget those; renumber on if
        the server is ahead (a state dir restored from an old backup)."""
        gone = [seq for seq in self._sizes if seq <= telemetry_seq]
        for seq in gone:
            self._remove(seq)
        if self.next_seq <= telemetry_seq:
            self.next_seq = telemetry_seq + 1
            self._save_meta()
        return len(gone)

    # --- internals ------------------------------------------------------------------------
    def _file(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}.json"

    def _remove(self, seq: int) -> None:
        self._sizes.pop(seq, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(seq))

    def _enforce_bounds(self) -> None:
        over = 0
        while len(self._sizes) > self.max_batches or (
            len(self._sizes) > 1 and self.bytes > self.max_bytes
        ):
            self._remove(min(self._sizes))
            over += 1
        if over:
            self.dropped += over
            self._save_meta()

    def _save_meta(self) -> None:
        self.state.write_json(
            "telemetry.json", {"next_batch_seq": self.next_seq, "dropped": self.dropped}
        )


def split_outcomes(outcomes: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Chunks of at most ``MAX_BATCH_OUTCOMES`` outcomes whose frame stays under 1 MiB (an
    outcome alone over it is cut to its error so the miner still shows up)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for outcome in outcomes:
        length = len(dump_frame(outcome).encode("utf-8")) + 1
        if length > FRAME_BUDGET:
            outcome = {
                **outcome,
                "status": None,
                "error": {"kind": "bad_response", "message": "status too large to send"},
            }
            length = len(dump_frame(outcome).encode("utf-8")) + 1
        if chunk and (size + length > FRAME_BUDGET or len(chunk) >= MAX_BATCH_OUTCOMES):
            yield chunk
            chunk, size = [], 0
        chunk.append(outcome)
        size += length
    if chunk:
        yield chunk
