"""SSH for simulated miners: an asyncssh server with a small miner-like shell.

One server configuration serves every miner; the miner a connection belongs to is found from
its local address (like the HTTP servers, ``key_of``). Login is ``root`` with the miner's
password. The shell has a prompt, line editing, and a handful of commands a miner's BusyBox
would answer: ``uptime``, ``ps``, ``df -h``, ``cat``/``tail``/``head``/``grep`` over
``/var/log/miner.log`` (the simulator's synthetic log), ``ping``, ``stty size``,
``/etc/init.d/<mining service> restart``, ``exit``… Pipes (``|``) and ``;``/``&&`` work,
quoting follows the shell (``shlex``). ``exec`` requests (what remote commands send) run one
line and return its exit status. The host key is derived from the fleet seed, so a restarted
simulator keeps the key that terminals pinned.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.connection import SSHServerConnection
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from miners.sim.clock import Clock
from miners.sim.logs import log_lines
from miners.sim.models import PROTOOS
from miners.sim.state import Miner

USER = "root"
MAX_LINE = 4096
LOG_FILE = "/var/log/miner.log"
OPERATOR_CHARS = frozenset(";&|<>")
SERVICES = {
    PROTOOS: ("/etc/init.d/mcdd",),
    "antminer": ("/etc/init.d/bmminer.sh", "/etc/init.d/cgminer"),
}
BOOT_LOG = (
    "kernel: Booting Linux on physical CPU 0x0",
    "kernel: Memory: 1002340K/1048576K available",
    "init: starting pid 1, console /dev/console",
    "dropbear[300]: Running in background",
    "hashboard-service@0[520]: hb0 detected, 3 chains",
    "mcdd[412]: connecting to pool 0",
    "mcdd[412]: pool 0: authorized worker",
    "mcdd[412]: mining started",
)
Lookup = Callable[[str], Miner | None]
KeyOf = Callable[[Any], str | None]


def host_key(seed: int) -> asyncssh.SSHKey:
    """The fleet's SSH host key: the same for the same seed, run after run."""
    secret = hashlib.sha256(f"rigwarden-sim-ssh-{seed}".encode()).digest()
    pem = Ed25519PrivateKey.from_private_bytes(secret).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return asyncssh.import_private_key(pem)


def split_line(line: str) -> list[tuple[bool, str]]:
    """POSIX-shell words and operators: ``(True, "|")`` for an operator, ``(False, word)`` for
    a word with its quotes (``'…'``, ``"…"``, ``\\``) removed. ``ValueError`` on an open quote."""
    tokens: list[tuple[bool, str]] = []
    word: list[str] = []
    in_word = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ValueError("unterminated '")
            word.append(line[i + 1 : end])
            in_word, i = True, end + 1
            continue
        if ch == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in '"\\$`':
                    i += 1
                word.append(line[i])
                i += 1
            if i >= len(line):
                raise ValueError('unterminated "')
            in_word, i = True, i + 1
            continue
        if ch == "\\" and i + 1 < len(line):
            word.append(line[i + 1])
            in_word, i = True, i + 2
            continue
        if ch.isspace() or ch in OPERATOR_CHARS:
            if in_word:
                tokens.append((False, "".join(word)))
                word, in_word = [], False
            if ch in OPERATOR_CHARS:
                if ch == "&" and line[i + 1 : i + 2] == "&":
                    tokens.append((True, "&&"))
                    i += 1
                else:
                    tokens.append((True, ch))
            i += 1
            continue
        word.append(ch)
        in_word, i = True, i + 1
    if in_word:
        tokens.append((False, "".join(word)))
    return tokens


@dataclass
class Result:
    out: str
    status: int = 0


class Shell:
    """The command interpreter of one miner; ``run`` takes one line."""

    def __init__(self, miner: Miner, clock: Clock, term_size: Callable[[], tuple[int, int]]):
        self.miner = miner
        self.clock = clock
        self.term_size = term_size
        self.commands: dict[str, Callable[[list[str], str], Awaitable[Result]]] = {
            "uptime": self._uptime,
            "ps": self._ps,
            "df": self._df,
            "cat": self._cat,
            "tail": self._tail,
            "head": self._head,
            "grep": self._grep,
            "ping": self._ping,
            "echo": self._echo,
            "hostname": self._hostname,
            "whoami": self._whoami,
            "true": self._true,
            "false": self._false,
            "stty": self._stty,
            "sleep": self._sleep,
            "help": self._help,
        }

    @property
    def hostname(self) -> str:
        return f"{self.miner.model.name.lower().replace(' ', '-')}-{self.miner.serial[-6:]}"

    async def run(self, line: str) -> Result:
        """One command line: ``a | b``, ``a; b``, ``a && b``; the last status."""
        try:
            tokens = split_line(line)
        except ValueError as exc:
            return Result(f"sh: syntax error: {exc}\n", 2)
        out: list[str] = []
        stage: list[str] = []
        status, pipe, skip = 0, "", False
        for operator, token in [*tokens, (True, ";")]:
            if not operator:
                stage.append(token)
                continue
            if token not in (";", "&&", "|"):
                return Result(f"sh: {token}: not supported here\n", 2)
            if stage and not skip:
                result = await self._one(stage, pipe)
                status = result.status
                pipe = result.out if token == "|" else ""
                if token != "|":
                    out.append(result.out)
            skip = token == "&&" and status != 0
            stage = []
        return Result("".join(out), status)

    async def _one(self, argv: list[str], stdin: str) -> Result:
        name, args = argv[0], argv[1:]
        if name in SERVICES.get(self.miner.kind, ()):
            return self._service(name, args)
        command = self.commands.get(name)
        if command is None:
            return Result(f"sh: {name}: not found\n", 127)
        return await command(args, stdin)

    # --- commands ---------------------------------------------------------------------
    def _service(self, name: str, args: list[str]) -> Result:
        if args != ["restart"]:
            return Result(f"Usage: {name} {{start|stop|restart}}\n", 1)
        self.miner.restart_mining(self.clock.now())
        return Result(f"Restarting {name.rsplit('/', 1)[-1]}: done\n")

    async def _uptime(self, args: list[str], stdin: str) -> Result:
        now = self.clock.now()
        up = max(0, int(now - self.miner.boot_at))
        clock = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%H:%M:%S")
        days, rest = divmod(up, 86400)
        span = (
            f"{days} days, {rest // 3600}:{rest % 3600 // 60:02d}"
            if days
            else (
                f"{rest // 3600}:{rest % 3600 // 60:02d}" if rest >= 3600 else f"{rest // 60} min"
            )
        )
        return Result(f" {clock} up {span},  1 user,  load average: 0.42, 0.38, 0.35\n")

    async def _ps(self, args: list[str], stdin: str) -> Result:
        daemons = (
            ["mcdd", "hashboard-service@0", "psu-service", "miner-api-server"]
            if self.miner.kind == PROTOOS
            else ["bmminer --api-listen --default-config /config/bmminer.conf", "lighttpd"]
        )
        rows = ["  PID USER       VSZ STAT COMMAND", "    1 root      1596 S    init"]
        for pid, daemon in enumerate(["dropbear -R", *daemons], start=300):
            rows.append(f"{pid:>5} root     12340 S    {daemon}")
        rows.append("  999 root      1600 R    ps")
        return Result("\n".join(rows) + "\n")

    async def _df(self, args: list[str], stdin: str) -> Result:
        return Result(
            "Filesystem                Size      Used Available Use% Mounted on\n"
            "/dev/root                58.0M     41.2M     16.8M  71% /\n"
            "tmpfs                   100.0M      2.1M     97.9M   2% /tmp\n"
            "/dev/mmcblk0p3           30.0M      4.0M     26.0M  13% /config\n"
        )

    def _file(self, path: str) -> str | None:
        if path == LOG_FILE:
            stamp = datetime.datetime.fromtimestamp(self.miner.boot_at, datetime.UTC)
            boot = [f"{stamp:%Y-%m-%dT%H:%M:%SZ} {line}" for line in BOOT_LOG]
            lines = log_lines(self.miner, "miner_sw", 200, self.clock.now())
            return "\n".join([*boot, *lines]) + "\n"
        if path == "/etc/hostname":
            return self.hostname + "\n"
        return None

    def _input(self, command: str, files: list[str], stdin: str) -> tuple[str | None, Result]:
        if not files:
            return stdin, Result("")
        text = self._file(files[-1])
        if text is None:
            return None, Result(f"{command}: {files[-1]}: No such file or directory\n", 1)
        return text, Result("")

    async def _cat(self, args: list[str], stdin: str) -> Result:
        text, error = self._input("cat", args, stdin)
        return Result(text) if text is not None else error

    def _count(self, command: str, args: list[str]) -> tuple[int, list[str]] | Result:
        count, rest = 10, list(args)
        if rest and rest[0] == "-n":
            if len(rest) < 2 or not rest[1].isdigit():
                return Result(f"{command}: invalid number of lines\n", 1)
            count, rest = int(rest[1]), rest[2:]
        return count, rest

    async def _tail(self, args: list[str], stdin: str) -> Result:
        parsed = self._count("tail", args)
        if isinstance(parsed, Result):
            return parsed
        count, files = parsed
        text, error = self._input("tail", files, stdin)
        if text is None:
            return error
        lines = text.splitlines(keepends=True)
        return Result("".join(lines[-count:] if count else []))

    async def _head(self, args: list[str], stdin: str) -> Result:
        parsed = self._count("head", args)
        if isinstance(parsed, Result):
            return parsed
        count, files = parsed
        text, error = self._input("head", files, stdin)
        if text is None:
            return error
        return Result("".join(text.splitlines(keepends=True)[:count]))

    async def _grep(self, args: list[str], stdin: str) -> Result:
        rest = [a for a in args if a != "-F"]
        if rest and rest[0] == "-e":
            rest = rest[1:]
        if not rest:
            return Result("Usage: grep [-F] [-e] PATTERN [FILE]\n", 2)
        pattern, files = rest[0], rest[1:]
        text, error = self._input("grep", files, stdin)
        if text is None:
            return Result(error.out, 2)
        found = [ln for ln in text.splitlines(keepends=True) if pattern in ln]
        return Result("".join(found), 0 if found else 1)

    async def _ping(self, args: list[str], stdin: str) -> Result:
        count, target = 3, ""
        rest = list(args)
        while rest:
            item = rest.pop(0)
            if item == "-c" and rest and rest[0].isdigit():
                count = min(10, int(rest.pop(0)))
            elif not item.startswith("-"):
                target = item
        if not target:
            return Result("Usage: ping [-c COUNT] HOST\n", 1)
        rows = [f"PING {target} ({target}): 56 data bytes"]
        rows += [
            f"64 bytes from {target}: seq={i} ttl=57 time={11 + i * 0.7:.1f} ms"
            for i in range(count)
        ]
        rows += [
            "",
            f"--- {target} ping statistics ---",
            f"{count} packets transmitted, {count} packets received, 0% packet loss",
        ]
        return Result("\n".join(rows) + "\n")

    async def _echo(self, args: list[str], stdin: str) -> Result:
        return Result(" ".join(args) + "\n")

    async def _hostname(self, args: list[str], stdin: str) -> Result:
        return Result(self.hostname + "\n")

    async def _whoami(self, args: list[str], stdin: str) -> Result:
        return Result(USER + "\n")

    async def _true(self, args: list[str], stdin: str) -> Result:
        return Result("")

    async def _false(self, args: list[str], stdin: str) -> Result:
        return Result("", 1)

    async def _stty(self, args: list[str], stdin: str) -> Result:
        if args != ["size"]:
            return Result("stty: only 'stty size' here\n", 1)
        cols, rows = self.term_size()
        return Result(f"{rows} {cols}\n")

    async def _sleep(self, args: list[str], stdin: str) -> Result:
        try:
            seconds = float(args[0]) if args else -1.0
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 60:
            return Result("sleep: give 0 to 60 seconds\n", 1)
        await asyncio.sleep(seconds)
        return Result("")

    async def _help(self, args: list[str], stdin: str) -> Result:
        names = sorted([*self.commands, *SERVICES.get(self.miner.kind, ()), "exit"])
        return Result("Commands: " + " ".join(names) + "\n")


class _Server(asyncssh.SSHServer):
    def __init__(self, sim: SshSim) -> None:
        self.sim = sim
        self.miner: Miner | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        host = self.sim.key_of(conn.get_extra_info("sockname"))
        self.miner = self.sim.lookup(host) if host else None
        if self.miner is None or self.miner.is_down(self.sim.clock.now()):
            conn.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim._connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self.miner is not None and username == USER and password == self.miner.password


class SshSim:
    """The SSH side of a simulated fleet: ``factory`` is the protocol for each miner's port."""

    def __init__(self, lookup: Lookup, clock: Clock, key_of: KeyOf, seed: int) -> None:
        self.lookup = lookup
        self.clock = clock
        self.key_of = key_of
        self.seed = seed
        self._options: asyncssh.SSHServerConnectionOptions | None = None
        self._connections: set[SSHServerConnection] = set()

    async def prepare(self) -> None:
        self._options = await asyncssh.SSHServerConnectionOptions.construct(
            server_factory=lambda: _Server(self),
            server_host_keys=[host_key(self.seed)],
            process_factory=self._session,
            allow_pty=True,
            line_editor=True,
            x11_forwarding=False,
            agent_forwarding=False,
            login_timeout=30,
        )

    def factory(self) -> asyncio.BaseProtocol:
        assert self._options is not None, "prepare() first"
        conn = SSHServerConnection(asyncio.get_running_loop(), self._options, None, None)
        self._connections.add(conn)
        return conn

    def close_all(self) -> None:
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()

    def drop(self, host: str) -> None:
        """A rebooting or offline miner: its SSH sessions end."""
        for conn in list(self._connections):
            if self.key_of(conn.get_extra_info("sockname")) == host:
                conn.close()
                self._connections.discard(conn)

    async def _session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        conn = process.get_extra_info("connection")
        owner = conn.get_owner() if conn is not None else None
        miner = owner.miner if isinstance(owner, _Server) else None
        if miner is None:
            process.exit(1)
            return

        def size() -> tuple[int, int]:
            cols, rows, _, _ = process.term_size
            return (cols or 80, rows or 24)

        shell = Shell(miner, self.clock, size)
        try:
            if process.command is not None:  # exec: one line, its status
                result = await shell.run(process.command[:MAX_LINE])
                process.stdout.write(result.out)
                process.exit(result.status)
                return
            process.stdout.write(f"BusyBox v1.36.1 built-in shell (ash) on {shell.hostname}\n")
            process.stdout.write("Type 'help' for the commands of this simulated miner.\n\n")
            prompt = True
            while True:
                if prompt:
                    process.stdout.write(f"{USER}@{shell.hostname}:~# ")
                prompt = True
                try:
                    line = await process.stdin.readline()
                except asyncssh.BreakReceived:
                    continue
                except asyncssh.TerminalSizeChanged:
                    # a resize (every attach sends one) is not a new line: the prompt and
                    # what was typed after it stay as they are
                    prompt = False
                    continue
                if not line:  # EOF (^D)
                    break
                line = line.strip()[:MAX_LINE]
                if line in ("exit", "logout"):
                    break
                if line:
                    result = await shell.run(line)
                    process.stdout.write(result.out)
            process.exit(0)
        except (asyncssh.Error, OSError, ConnectionError):
            process.close()
