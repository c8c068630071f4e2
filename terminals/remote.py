"""Remote commands: an allowlisted command run over SSH on many hosts at once.

The catalog (``COMMANDS``) is the only source of command lines. Each argument is checked
against its spec (a bounded integer, one of fixed choices, a hostname, or one line of
printable text) and then shell-quoted with ``shlex.quote``: nothing a caller types reaches a
shell unquoted, and fixed choices map to fixed strings. ``run_on_hosts`` opens the SSH
connections (host keys pinned, as terminals do), runs the line with bounded concurrency, a
timeout and a cap on the output kept per host.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from terminals import manager
from terminals.close_codes import CLOSE_HOST_KEY_CHANGED

MAX_HOSTS = 100
CONCURRENCY = 8  # SSH connections open at once per run
COMMAND_TIMEOUT = 30.0  # per host, once logged in
MAX_OUTPUT = 64 * 1024  # bytes of output kept per host (stdout and stderr merged)
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*")


class ArgumentError(ValueError):
    """An argument that doesn't fit its spec: ``name`` is the argument."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Integer:
    minimum: int
    maximum: int
    default: int | None = None
    help: str = ""
    kind: str = "integer"

    def clean(self, name: str, value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgumentError(name, f"Give a whole number from {self.minimum} to {self.maximum}.")
        if not self.minimum <= value <= self.maximum:
            raise ArgumentError(name, f"Give a whole number from {self.minimum} to {self.maximum}.")
        return str(value)


@dataclass(frozen=True)
class Choice:
    """One of fixed options; the option maps to a fixed string (a path, a service script)."""

    options: Mapping[str, str]
    default: str | None = None
    help: str = ""
    kind: str = "choice"

    def clean(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise ArgumentError(name, f"One of {', '.join(sorted(self.options))}.")
        return self.options[value]


@dataclass(frozen=True)
class Hostname:
    default: str | None = None
    help: str = ""
    kind: str = "hostname"

    def clean(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
            raise ArgumentError(name, "A hostname or IPv4 address (letters, digits, '.', '-').")
        return value


@dataclass(frozen=True)
class Text:
    """One line of printable text (no control characters, so no newline or NUL)."""

    max_length: int
    default: str | None = None
    help: str = ""
    kind: str = "text"

    def clean(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= self.max_length:
            raise ArgumentError(name, f"Give 1 to {self.max_length} characters.")
        if any(unicodedata.category(ch).startswith("C") for ch in value):
            raise ArgumentError(name, "One line of printable text: no control characters.")
        return value


Spec = Integer | Choice | Hostname | Text


@dataclass(frozen=True)
class Command:
    name: str
    label: str
    template: str  # str.format fields are the arguments, each filled in shell-quoted
    params: Mapping[str, Spec] = field(default_factory=dict)
    changes_state: bool = False

    def build(self, args: Mapping[str, Any]) -> str:
        """The command line, or ``ArgumentError``: unknown or missing arguments included."""
        if not isinstance(args, Mapping):
            raise ArgumentError("args", "An object of argument values.")
        unknown = sorted(set(args) - set(self.params))
        if unknown:
            raise ArgumentError(str(unknown[0]), "Not an argument of this command.")
        values: dict[str, str] = {}
        for name, spec in self.params.items():
            value = args.get(name, spec.default)
            if value is None:
                raise ArgumentError(name, "This argument is required.")
            values[name] = shlex.quote(spec.clean(name, value))
        return self.template.format(**values)


_LOGS = {"miner": "/var/log/miner.log", "messages": "/var/log/messages"}
_SERVICES = {
    "cgminer": "/etc/init.d/cgminer",
    "bmminer": "/etc/init.d/bmminer.sh",
    "bosminer": "/etc/init.d/bosminer",
}
_LINES = Integer(1, 5000, default=200, help="How many of the last lines")

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("uptime", "Uptime and load", "uptime"),
        Command("processes", "Running processes", "ps"),
        Command("disk_free", "Free disk space", "df -h"),
        Command(
            "fetch_logs",
            "Fetch the last lines of a log",
            "tail -n {lines} {log}",
            {"log": Choice(_LOGS, default="miner", help="Which log"), "lines": _LINES},
        ),
        Command(
            "grep_log",
            "Search a log for a fixed string",
            "grep -F -e {pattern} {log} | tail -n {lines}",
            {
                "pattern": Text(200, help="The text to look for (taken literally)"),
                "log": Choice(_LOGS, default="miner", help="Which log"),
                "lines": _LINES,
            },
        ),
        Command(
            "ping",
            "Ping a host from the miner (a pool, the gateway)",
            "ping -c {count} {target}",
            {"target": Hostname(help="Hostname or IPv4"), "count": Integer(1, 10, default=3)},
        ),
        Command(
            "restart_mining",
            "Restart the mining service",
            "{service} restart",
            {"service": Choice(_SERVICES, help="The miner's mining service")},
            changes_state=True,
        ),
    )
}


def build(command: str, args: Mapping[str, Any]) -> tuple[Command, str]:
    """The catalog entry and its command line, or ``ArgumentError``."""
    entry = COMMANDS.get(command) if isinstance(command, str) else None
    if entry is None:
        raise ArgumentError("command", f"One of {', '.join(sorted(COMMANDS))}.")
    return entry, entry.build(args)


# --- running ------------------------------------------------------------------------------
@dataclass
class Outcome:
    host_id: int
    status: str  # ok (exit 0) · failed (other exit) · error (no connection, timeout) · refused
    exit_status: int | None = None
    output: bytes = b""
    truncated: bool = False
    error: str = ""
    seconds: float = 0.0


async def _run_one(host_id: int, line: str) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = Outcome(host_id, "error")
    conn = jump = None
    try:
        conn, jump = await manager.connect_host(host_id)
        async with asyncio.timeout(COMMAND_TIMEOUT):
            process = await conn.create_process(line, stderr=asyncssh.STDOUT, encoding=None)
            kept = bytearray()
            while chunk := await process.stdout.read(32 * 1024):
                kept += chunk
                if len(kept) > MAX_OUTPUT:
                    outcome.truncated = True
                    process.close()
                    break
            await process.wait_closed()
            outcome.output = bytes(kept[:MAX_OUTPUT])
            outcome.exit_status = process.exit_status
        outcome.status = "ok" if outcome.exit_status == 0 else "failed"
        if outcome.exit_status is None and not outcome.truncated:
            signal = process.exit_signal[0] if process.exit_signal else "?"
            outcome.error = f"ended by signal {signal}"
    except manager.SessionError as exc:
        outcome.status = "refused" if exc.code == CLOSE_HOST_KEY_CHANGED else "error"
        outcome.error = exc.message
    except TimeoutError:
        outcome.error = f"no answer within {COMMAND_TIMEOUT:g} s"
    except (OSError, asyncssh.Error) as exc:
        outcome.error = f"SSH failed: {exc}"
    finally:
        for c in (conn, jump):
            if c is not None:
                c.close()
    outcome.seconds = round(loop.time() - started, 3)
    return outcome


async def run_on_hosts(
    host_ids: Sequence[int], line: str, *, concurrency: int = CONCURRENCY
) -> list[Outcome]:
    """``line`` on every host, at most ``concurrency`` at a time; outcomes in host order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(host_id: int) -> Outcome:
        async with gate:
            return await _run_one(host_id, line)

    return list(await asyncio.gather(*(one(h) for h in host_ids)))
