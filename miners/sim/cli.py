"""`python -m miners.sim`: serve a simulated fleet until SIGTERM/SIGINT.

Exit codes: 0 after a signal-driven shutdown, 2 for bad arguments or spec files, 1 when the
sockets cannot be bound (port in use, or real ports without root: use --port-offset).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from miners.sim import shards
from miners.sim.control import parse_address, start_control
from miners.sim.fleet import SimFleet
from miners.sim.models import ANTMINER, PROTOOS
from miners.sim.net import raise_nofile_limit
from miners.sim.spec import FLAVOURS, FleetSpec, SpecError, load_spec_file, seeded_password

log = logging.getLogger("miners.sim")
Publish = Callable[[list[dict[str, Any]], str], None]


class _DropClientErrors(logging.Filter):
    """Malformed requests are the client's fault; scanners would flood stderr with them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m miners.sim",
        description="Serve simulated ProtoOS and Antminer miners on consecutive 127.x addresses.",
    )
    parser.add_argument("--proto", type=int, default=None, metavar="N", help="ProtoOS rigs")
    parser.add_argument("--antminer", type=int, default=None, metavar="M", help="Antminers")
    parser.add_argument("--base", default=None, help="first address (default 127.77.0.1)")
    creds = parser.add_mutually_exclusive_group()
    creds.add_argument("--password", default=None, help="password of every miner")
    creds.add_argument(
        "--default-password",
        action="store_true",
        help="factory state: ProtoOS 'proto' with the default-password gate, Antminer root/root",
    )
    creds.add_argument(
        "--factory-password",
        default=None,
        metavar="P",
        help="factory state, ProtoOS with a per-unit label password P instead of 'proto' "
        "(gate active, password_set true); Antminers as with --default-password",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for serials, MACs, drift")
    parser.add_argument("--inventory", default=None, metavar="FILE", help="default: stdout")
    parser.add_argument("--control", default=None, metavar="HOST:PORT", help="fault API")
    parser.add_argument("--port-offset", type=int, default=None, metavar="K")
    parser.add_argument(
        "--single-address",
        nargs="?",
        const="127.0.0.1",
        default=None,
        metavar="ADDR",
        help="port-per-miner mode: every miner on ADDR (default 127.0.0.1), each with its own "
        "ports; --base then only names the miners",
    )
    parser.add_argument("--spec", default=None, metavar="FILE", help="fleet spec (JSON/YAML)")
    parser.add_argument("--no-tls", action="store_true", help="ProtoOS without https")
    parser.add_argument(
        "--ssh", action="store_true", help="every miner also serves SSH (root, its password)"
    )
    parser.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default=None,
        help="ProtoOS answers: spec (the OpenAPI spec, default) or field (real-rig drift)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="P",
        help="shard the fleet over P processes (default: as the open-files limit requires)",
    )
    return parser


def spec_from_args(args: argparse.Namespace) -> FleetSpec:
    """Merge flags and spec file; flags win. Without credentials flags every miner gets the
    seeded password (`rigwarden-sim-<seed>`), never the factory one."""
    data: dict[str, Any] = {}
    if args.spec:
        if args.proto is not None or args.antminer is not None:
            raise SpecError("give the counts either in --spec or with --proto/--antminer")
        data = load_spec_file(args.spec)
    else:
        data = {"proto": args.proto or 0, "antminer": args.antminer or 0}
    for key in ("base", "seed", "port_offset", "single_address"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.no_tls:
        data["tls"] = False
    if args.ssh:
        data["ssh"] = True
    if args.flavour is not None:
        data["flavour"] = args.flavour
    default = data.pop("default_password", False)
    if isinstance(default, str):
        data.setdefault("factory_password", default)
    if args.factory_password is not None:
        data["factory_password"] = args.factory_password
    factory = bool(default) or args.default_password or data.get("factory_password") is not None
    password = args.password or data.pop("password", None)
    if password is None and not factory:
        password = seeded_password(int(data.get("seed", 1)))
    if args.default_password or args.factory_password is not None:
        password = None
    data["password"] = password
    if password is not None:
        data.pop("factory_password", None)  # --password overrides a label password in the file
    for group in data.get("groups") or []:
        if (
            isinstance(group, dict)
            and "password" not in group
            and not group.get("default_password")
            and group.get("factory_password") is None
        ):
            group["password"] = data["password"]
            if data.get("factory_password") is not None and group.get("kind") == "protoos":
                group["factory_password"] = data["factory_password"]
        if isinstance(group, dict) and args.no_tls:
            group["tls"] = False
        if isinstance(group, dict) and args.flavour is not None:
            group["flavour"] = args.flavour
    spec = FleetSpec.from_mapping(data)
    spec.validate()
    return spec


def check_inventory_target(target: str | None) -> None:
    """Refuse an inventory path that can't be written before any socket is bound."""
    if target is None or target == "-":
        return
    path = Path(target)
    if path.is_dir():
        raise SpecError(f"--inventory {target}: is a directory, give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise SpecError(f"--inventory {target}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(f"--inventory {target}: directory {parent} is not writable")


def _write_inventory(inventory: list[dict[str, Any]], target: str | None) -> None:
    text = json.dumps(inventory, indent=2) + "\n"
    if target is None or target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written inventory


def _where(spec: FleetSpec) -> str:
    if spec.single_address:
        return f"{spec.single_address} (one port block per miner)"
    return spec.base


def _announce(spec: FleetSpec, inventory_target: str | None, started: float) -> Publish:
    def publish(inventory: list[dict[str, Any]], how: str) -> None:
        _write_inventory(inventory, inventory_target)
        counts = {
            kind: sum(1 for e in inventory if e["kind"] == kind) for kind in (PROTOOS, ANTMINER)
        }
        print(
            f"miners.sim ready: {counts[PROTOOS]} ProtoOS + {counts[ANTMINER]} Antminer from "
            f"{_where(spec)} in {time.monotonic() - started:.1f}s ({how})",
            file=sys.stderr,
            flush=True,
        )

    return publish


async def serve(spec: FleetSpec, publish: Publish, control: tuple[str, int] | None) -> int:
    fleet = SimFleet(spec)
    try:
        await fleet.start()
    except OSError as exc:
        hint = (
            " (real ports need root: try --port-offset 10000)" if exc.errno == errno.EACCES else ""
        )
        print(f"miners.sim: cannot listen: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 1
    runner = None
    try:
        if control is not None:
            try:
                runner = await start_control(fleet, *control)
            except OSError as exc:
                print(
                    f"miners.sim: cannot listen on --control: {exc.strerror or exc}",
                    file=sys.stderr,
                )
                return 1
        try:
            publish(fleet.inventory, "1 process")
        except OSError as exc:
            print(f"miners.sim: cannot write the inventory: {exc}", file=sys.stderr)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await fleet.stop()
    return 0


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (it roughly halves per-connection CPU)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("aiohttp.server").addFilter(_DropClientErrors())
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
        control = parse_address(args.control) if args.control else None
        check_inventory_target(args.inventory)
        if args.processes is not None and args.processes < 1:
            raise SpecError("--processes must be at least 1")
    except (SpecError, ValueError) as exc:
        parser.error(str(exc))
    started = time.monotonic()
    publish = _announce(spec, args.inventory, started)
    total = sum(g.count for g in spec.resolved_groups())
    if args.processes is None:
        slices = shards.plan(total, raise_nofile_limit(1 << 20))
    else:
        size = -(-total // args.processes)
        slices = [range(i, min(total, i + size)) for i in range(0, total, size)]
    with contextlib.suppress(KeyboardInterrupt):
        if len(slices) == 1:
            return run_loop(serve(spec, publish, control))
        group = shards.Shards(spec, slices)  # fork before this process starts its event loop
        return run_loop(shards.serve_sharded(group, publish, control))
    return 0
