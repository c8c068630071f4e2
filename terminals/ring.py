"""A replay buffer of terminal output addressed by byte sequence numbers. Pure."""

from __future__ import annotations


class Ring:
    """The last ``capacity`` bytes of a stream; byte ``n`` of the stream has seq ``n``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data = bytearray()
        self.start = 0  # seq of the oldest byte kept

    @property
    def end(self) -> int:
        """Seq of the next byte (= bytes ever appended)."""
        return self.start + len(self._data)

    def append(self, data: bytes) -> None:
        self._data += data
        excess = len(self._data) - self.capacity
        if excess > 0:
            del self._data[:excess]
            self.start += excess

    def since(self, seq: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``seq`` (clamped to what is kept)."""
        offset = max(seq, self.start) - self.start
        return bytes(self._data[offset : offset + limit])

    def __len__(self) -> int:
        return len(self._data)
