"""`python -m miners probe|action`: field debugging with the same drivers the server uses.

Exit codes: 0 success, 1 the miner refused or failed the action, 2 bad arguments or nothing
answered like a miner. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from miners.base import Detail, Device
from miners.deadline import DEFAULT_TIMEOUT, IDENTIFY_TIMEOUT
from miners.errors import AuthFailed, MinerError
from miners.http import close_shared_http
from miners.registry import Registry, default_drivers
from miners.types import CoolingMode, Credentials, DeviceInfo, PoolConfig, PowerMode

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """Reported on stderr with exit code 2."""


def parse_target(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address."""
    host, port = text, None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise CliError(f"bad target {text!r}: use [IPv6]:PORT")
        port_text = rest[1:] or None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CliError(f"bad port in {text!r}: expected 1-65535")
        port = int(port_text)
    if not host or any(c.isspace() for c in host):
        raise CliError(f"bad host in {text!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise CliError(f"bad host in {text!r}") from None
    return host, port


def _pool(text: str) -> PoolConfig:
    parts = text.split(",", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"expected URL,USER[,PASSWORD], got {text!r}")
    return PoolConfig(url=parts[0], user=parts[1], password=parts[2] if len(parts) > 2 else "")


def _power(text: str) -> int | PowerMode:
    if text.isdigit():
        return int(text)
    try:
        return PowerMode(text.replace("-", "_"))
    except ValueError:
        modes = ", ".join(m.value for m in PowerMode)
        raise argparse.ArgumentTypeError(f"expected watts or one of {modes}") from None


def _with_keys(pools: list[PoolConfig], keys: list[str]) -> list[PoolConfig]:
    """Hand the `--authority-key`s to the Stratum V2 pools, in order."""
    remaining = list(keys)
    result = []
    for pool in pools:
        if pool.url.startswith("stratum2+tcp://") and remaining:
            pool = dataclasses.replace(pool, authority_pubkey=remaining.pop(0))
        result.append(pool)
    if remaining:
        raise CliError("more --authority-key values than stratum2+tcp:// pools")
    return result


def _options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """The options every command takes. Action sub-commands repeat them (so they can follow
    the action name) with suppressed defaults, so they don't reset values given earlier."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--password", default=default(None), help="miner password")
    parser.add_argument("--username", default=default(None), help="web user (Antminer)")
    parser.add_argument(
        "--timeout", type=float, default=default(DEFAULT_TIMEOUT), help="seconds per call"
    )
    parser.add_argument("--driver", default=default(None), help="protoos, antminer or pyasic")
    parser.add_argument(
        "--no-pyasic", action="store_true", default=default(False), help="skip pyasic-rs"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="one JSON object"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m miners", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("target", help="HOST or HOST:PORT")
    _options(common)
    repeated = argparse.ArgumentParser(add_help=False)
    _options(repeated, suppress=True)

    sub.add_parser("probe", parents=[common], help="identify a miner and read its status")
    action = sub.add_parser("action", parents=[common], help="do something to a miner")
    acts = action.add_subparsers(dest="action", required=True)
    for name in ("reboot", "start", "stop"):
        acts.add_parser(name, parents=[repeated])
    blink = acts.add_parser("blink", parents=[repeated])
    blink.add_argument("state", nargs="?", choices=("on", "off"), default="on")
    blink.add_argument("--seconds", type=int, help="turn off after N seconds (where supported)")
    power = acts.add_parser("power-target", parents=[repeated])
    power.add_argument("value", type=_power, help="watts, or efficiency / maximum_hashrate")
    pools = acts.add_parser("pools", parents=[repeated])
    pools.add_argument("pools", type=_pool, nargs="+", metavar="URL,USER[,PASSWORD]")
    pools.add_argument(
        "--authority-key",
        action="append",
        default=[],
        metavar="KEY",
        help="Stratum V2 authority public key; the n-th goes to the n-th stratum2+tcp:// pool",
    )
    cooling = acts.add_parser("cooling", parents=[repeated])
    cooling.add_argument("mode", choices=[m.value for m in CoolingMode])
    cooling.add_argument("--speed", type=int, help="fan speed percent (manual)")
    cooling.add_argument("--target-temp", type=float, help="target temperature °C (auto)")
    logs = acts.add_parser("logs", parents=[repeated])
    logs.add_argument("--lines", type=int, default=100)
    logs.add_argument("--source", help="log source (ProtoOS: os, pool_sw, miner_sw, ...)")
    return parser


def _registry(args: argparse.Namespace) -> Registry:
    include_pyasic = not args.no_pyasic and args.driver in (None, "pyasic")
    registry = Registry(default_drivers(include_pyasic=include_pyasic))
    if args.driver is not None:
        try:
            registry = Registry([registry.get(args.driver)])
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
    return registry


def _credentials(args: argparse.Namespace) -> Credentials | None:
    if args.password is None:
        return None
    return Credentials(password=args.password, username=args.username)


async def _connect(args: argparse.Namespace) -> tuple[DeviceInfo, Device]:
    host, port = parse_target(args.target)
    registry = _registry(args)
    creds = _credentials(args)
    timeout = min(args.timeout, IDENTIFY_TIMEOUT * 2)
    if port is None:
        info = await registry.identify_any(host, timeout=timeout, credentials=creds)
    else:
        info = await registry.identify(host, port, timeout=timeout, credentials=creds)
    if info is None:
        where = (
            f"{host}:{port}" if port else f"{host} (ports {', '.join(map(str, registry.ports()))})"
        )
        raise CliError(f"nothing answered like a miner at {where}")
    device = registry.get(info.driver).connect(info, creds, timeout=args.timeout)
    return info, device


def _table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in rows)


async def probe(args: argparse.Namespace) -> int:
    info, device = await _connect(args)
    status, error = None, None
    try:
        status = await device.status(Detail.FULL)
    except AuthFailed as exc:
        error = exc.to_dict()
        with contextlib.suppress(MinerError):
            # what needs no password (an Antminer's RPC port) is still worth showing
            status = await device.status(Detail.SUMMARY)
    except MinerError as exc:
        error = exc.to_dict()
    finally:
        await device.close()
    pools = (
        [{"url": p.url, "user": p.user, "status": p.status.value} for p in status.pools]
        if status
        else []
    )
    result: dict[str, Any] = {
        **{k: v for k, v in info.to_dict().items() if k != "extra"},
        "capabilities": sorted(c.value for c in device.capabilities),
        "health": status.health.value if status else None,
        "state": status.state.value if status else (info.state.value if info.state else None),
        "hashrate_ths": status.hashrate_ths if status else None,
        "power_w": status.power_w if status else None,
        "pools": pools,
        "status": status.to_dict() if status else None,
        "error": error,
    }
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    rows: list[tuple[str, Any]] = [
        (k, result[k])
        for k in (
            "driver",
            "make",
            "model",
            "firmware",
            "serial",
            "mac",
            "hostname",
            "host",
            "port",
            "scheme",
        )
    ]
    if info.state is not None:
        rows.append(("identified as", info.state.value))
    rows.append(("capabilities", ", ".join(result["capabilities"])))
    if status is not None:
        rows += [
            ("health", f"{status.health.value} ({status.state.value})"),
            ("hashrate", f"{status.hashrate_ths} TH/s (ideal {status.ideal_hashrate_ths})"),
            ("power", f"{status.power_w} W (target {status.power_target_w})"),
            ("efficiency", f"{status.efficiency_jth} J/TH"),
            (
                "chip temp",
                f"{status.temperatures.chip_avg_c} °C (max {status.temperatures.chip_max_c})",
            ),
            ("fans", " ".join(f"{f.rpm}" for f in status.fans)),
            (
                "boards",
                " ".join(
                    f"{b.slot}:{b.hashrate_ths}{'' if b.ok else '!'}" for b in status.hashboards
                ),
            ),
            (
                "psus",
                " ".join(f"{p.slot}:{p.power_w}{'' if p.ok else '!'}" for p in status.psus),
            ),
            ("uptime", f"{status.uptime_s} s"),
            ("default password", status.default_password_active),
        ]
        rows += [
            (f"pool {i}", f"{p['url']} {p['user']} [{p['status']}]") for i, p in enumerate(pools)
        ]
        rows += [("error", f"{e.code or ''} {e.message}") for e in status.errors]
    if error is not None:
        rows.append(("status failed", f"{error['kind']}: {error['message']}"))
    print(_table(rows))
    return EXIT_OK


async def action(args: argparse.Namespace) -> int:
    _, device = await _connect(args)
    name: str = args.action
    calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "reboot": device.reboot,
        "start": device.start_mining,
        "stop": device.stop_mining,
        "blink": lambda: device.blink(args.state == "on", args.seconds),
        "power-target": lambda: (
            device.set_power_target(watts=args.value)
            if isinstance(args.value, int)
            else device.set_power_target(mode=args.value)
        ),
        "pools": lambda: device.set_pools(_with_keys(args.pools, args.authority_key)),
        "cooling": lambda: device.set_cooling(
            CoolingMode(args.mode), speed_percent=args.speed, target_temp_c=args.target_temp
        ),
        "logs": lambda: device.logs(args.lines, args.source),
    }
    try:
        result = await calls[name]()
    finally:
        await device.close()
    if args.json:
        print(json.dumps({"ok": True, "action": name, "result": result}))
    elif isinstance(result, list):
        print("\n".join(result))
    else:
        print(f"{name}: ok")
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    try:
        return await (probe(args) if args.command == "probe" else action(args))
    finally:
        await close_shared_http()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MinerError as exc:
        print(f"error ({exc.kind}): {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
