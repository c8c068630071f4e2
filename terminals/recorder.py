"""An asciinema v2 writer (https://docs.asciinema.org/manual/asciicast/v2/): a JSON header
line, then one ``[seconds, code, text]`` line per event — ``o`` output, ``r`` a resize
(``"COLSxROWS"``), ``i`` input (only when the org's policy records keystrokes).

Output bytes go through an incremental UTF-8 decoder, so a character split across two
reads is written whole; invalid bytes become U+FFFD, as a terminal would show them.
"""

from __future__ import annotations

import codecs
import json
import time
from pathlib import Path
from typing import IO

FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0
"""At most this long between writes to disk, so a recording in progress can be listed with its
size so far and downloaded up to about now."""


class Recorder:
    def __init__(
        self, path: Path, *, cols: int, rows: int, term: str, with_input: bool, title: str
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.with_input = with_input
        self.started = time.monotonic()
        self._flushed_at = self.started
        self._file: IO[str] | None = path.open("w", encoding="utf-8")
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = 0
        header = {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(time.time()),
            "env": {"TERM": term},
            "title": title,
        }
        self._line(json.dumps(header))

    def _line(self, text: str) -> None:
        if self._file is None:
            return
        self._file.write(text + "\n")
        self._pending += len(text)
        if self._pending >= FLUSH_BYTES or time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()

    def _event(self, code: str, text: str) -> None:
        if text:
            elapsed = round(time.monotonic() - self.started, 6)
            self._line(json.dumps([elapsed, code, text], ensure_ascii=False))

    def output(self, data: bytes) -> None:
        self._event("o", self._decoder.decode(data))

    def input(self, data: bytes) -> None:
        if self.with_input:
            self._event("i", data.decode("utf-8", "replace"))

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._pending = 0
            self._flushed_at = time.monotonic()

    def close(self) -> tuple[int, float]:
        """Finish the file: its size in bytes and the recording's length in seconds."""
        if self._file is not None:
            self._event("o", self._decoder.decode(b"", final=True))
            self._file.close()
            self._file = None
        return self.path.stat().st_size, time.monotonic() - self.started
