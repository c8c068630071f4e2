"""Host health for heartbeats, read from /proc (Linux) without extra dependencies: CPU since
the previous reading, memory in use, disk use of the state directory, load, uptime."""

from __future__ import annotations

import os
from pathlib import Path


def _cpu_times(proc: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies from the first line of /proc/stat."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
        values = [int(v) for v in first[1:]]
    except (OSError, IndexError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _memory_percent(proc: Path) -> float | None:
    fields: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            fields[name] = int(rest.split()[0])
    except (OSError, IndexError, ValueError):
        return None
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        return None
    return round(100.0 * (total - available) / total, 1)


def _uptime(proc: Path) -> int | None:
    try:
        return int(float((proc / "uptime").read_text().split()[0]))
    except (OSError, IndexError, ValueError):
        return None


def _disk_percent(path: Path) -> float | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return round(100.0 * (total - free) / total, 1) if total else None


class HostHealth:
    def __init__(self, disk_path: Path, proc: Path = Path("/proc")) -> None:
        self.disk_path = disk_path
        self.proc = proc
        self._last_cpu = _cpu_times(proc)

    def read(self) -> dict[str, float | int | None]:
        cpu = None
        now = _cpu_times(self.proc)
        if now is not None and self._last_cpu is not None and now[1] > self._last_cpu[1]:
            busy, total = now[0] - self._last_cpu[0], now[1] - self._last_cpu[1]
            cpu = round(100.0 * busy / total, 1)
        self._last_cpu = now
        try:
            load1: float | None = round(os.getloadavg()[0], 2)
        except OSError:
            load1 = None
        return {
            "cpu_percent": cpu,
            "memory_percent": _memory_percent(self.proc),
            "disk_percent": _disk_percent(self.disk_path),
            "load1": load1,
            "uptime_s": _uptime(self.proc),
        }
