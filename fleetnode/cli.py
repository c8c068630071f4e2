"""``python -m fleetnode enroll | run | status`` (see docs/fleet-node.md).

Exit codes: 0 ok, 1 failed (message on stderr), 2 bad usage, 3 revoked by the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from fleetnode import __version__
from fleetnode.enroll import EnrollError, EnrollRevoked, EnrollUsage, enroll, revoked_seen
from fleetnode.gateway import normalize_server
from fleetnode.state import DEFAULT_STATE_DIR, State, StateError
from fleetnode.telemetry import TelemetryBuffer


def _parser() -> argparse.ArgumentParser:
    # --state-dir and --log-level go before or after the command (`enroll --state-dir D`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        help=f"where keys and counters live (default {DEFAULT_STATE_DIR}, or $FLEETNODE_STATE_DIR)",
    )
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO (default), …")
    parser = argparse.ArgumentParser(
        prog="fleetnode", description="Rigwarden fleet-node agent", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"fleetnode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "enroll", help="register with a code and wait for confirmation", parents=[common]
    )
    p.add_argument(
        "--server", required=True, help="the server's URL, e.g. https://rigs.example.com"
    )
    p.add_argument("--code", help="the enrollment code from the server (one use, 1 h)")
    p.add_argument("--name", default=socket.gethostname(), help="a name for this node")
    p.add_argument("--ca-file", help="CA bundle to verify the server's certificate with")
    p.add_argument("--allow-http", action="store_true", help="allow plain http to a remote server")
    p.add_argument("--wait", type=float, default=24 * 3600, help="seconds to wait for confirmation")

    p = sub.add_parser("run", help="connect and work until stopped", parents=[common])
    p.add_argument(
        "--metrics",
        default=os.environ.get("FLEETNODE_METRICS", "127.0.0.1:9464"),
        help="loopback HOST:PORT for /metrics, or 'off' (default 127.0.0.1:9464)",
    )
    p.add_argument("--no-pyasic", action="store_true", help="only the built-in drivers")

    p = sub.add_parser("status", help="what this node knows and last saw", parents=[common])
    p.add_argument("--json", action="store_true", help="one JSON object")
    return parser


def _metrics_address(value: str) -> tuple[str, int | None]:
    if value.lower() in {"off", "none", ""}:
        return "127.0.0.1", None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics: expected HOST:PORT or 'off', got {value!r}")
    from fleetnode.metrics import check_loopback

    return check_loopback(host.strip("[]")), int(port)


def status_report(state: State) -> dict[str, Any]:
    config = state.config()
    last = state.status()
    revoked = config is not None and revoked_seen(state)
    report: dict[str, Any] = {
        "state_dir": str(state.dir),
        "agent_version": __version__,
        "revoked": revoked,
        "enrolled": bool(config and state.api_key()) and not revoked,
        "awaiting_confirmation": bool(config and not state.api_key()) and not revoked,
    }
    if config is None:
        return report
    buffer = TelemetryBuffer(state)
    assignment = state.assignment() or {}
    report.update(
        {
            "server": config.server,
            "node_id": config.node_id,
            "name": config.name,
            "fingerprint": config.fingerprint,
            "node_key": state.node_key() is not None,
            "trusted_keys": sorted(state.trusted_keys()),
            "seq_hwm": state.seq_hwm(),
            "miners": len(assignment.get("miners") or []),
            "telemetry": {
                "buffered": len(buffer),
                "buffered_bytes": buffer.bytes,
                "dropped": buffer.dropped,
                "next_batch_seq": buffer.next_seq,
            },
            "last": last,
            "permission_problems": state.check_permissions(),
        }
    )
    return report


def _ago(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "never"
    return f"{max(0, time.time() - ts):.0f} s ago"


def print_status(report: dict[str, Any]) -> None:
    if not report.get("node_id"):
        print(f"Not enrolled (state dir {report['state_dir']}). Run `fleetnode enroll`.")
        return
    last = report.get("last") or {}
    telemetry = report["telemetry"]
    state = (
        "revoked (enroll a new node with a new code and another --state-dir)"
        if report.get("revoked")
        else "enrolled"
        if report["enrolled"]
        else "awaiting confirmation"
    )
    lines = [
        f"Node {report['node_id']} '{report['name']}' — {state}",
        f"  server:       {report['server']}",
        f"  fingerprint:  {report['fingerprint']}",
        f"  connected:    {'yes' if last.get('connected') else 'no'}"
        f" (last heartbeat {_ago(last.get('last_heartbeat_at'))})",
        f"  miners:       {report['miners']}",
        f"  node key:     {'installed' if report['node_key'] else 'not yet delivered'}",
        f"  command keys: {', '.join(report['trusted_keys']) or 'none yet (trusted on first contact)'}",
        f"  telemetry:    {telemetry['buffered']} batches buffered, {telemetry['dropped']} dropped",
    ]
    if last.get("last_close"):
        lines.append(
            f"  last close:   code {last['last_close'].get('code')} {_ago(last['last_close'].get('at'))}"
        )
    if last.get("last_error"):
        lines.append(f"  last error:   {last['last_error']}")
    lines += [f"  WARNING: {problem}" for problem in report["permission_problems"]]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # (not set_defaults: parents share their option objects, a default there reaches every
    # subcommand and would overwrite a value given before the command)
    args.state_dir = getattr(
        args, "state_dir", os.environ.get("FLEETNODE_STATE_DIR", DEFAULT_STATE_DIR)
    )
    args.log_level = getattr(args, "log_level", os.environ.get("FLEETNODE_LOG_LEVEL", "INFO"))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    state = State(args.state_dir)
    try:
        if args.command == "enroll":
            server = normalize_server(args.server, allow_http=args.allow_http)
            asyncio.run(
                enroll(
                    state,
                    server=server,
                    code=args.code,
                    name=args.name[:100],
                    ca_file=args.ca_file,
                    wait_s=args.wait,
                )
            )
            return 0
        if args.command == "run":
            from fleetnode.agent import run_agent

            host, port = _metrics_address(args.metrics)
            return asyncio.run(
                run_agent(
                    state, metrics_host=host, metrics_port=port, include_pyasic=not args.no_pyasic
                )
            )
        report = status_report(state)
        if args.json:
            print(json.dumps(report, indent=1, sort_keys=True))
        else:
            print_status(report)
        return 0
    except EnrollRevoked as exc:
        print(f"fleetnode: {exc}", file=sys.stderr)
        return 3
    except (ValueError, EnrollUsage) as exc:
        print(f"fleetnode: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(
            f"fleetnode: {exc}: run as the user that owns the state directory "
            "(e.g. sudo -u rigwarden-node …) or choose one with --state-dir",
            file=sys.stderr,
        )
        return 1
    except (EnrollError, StateError, OSError) as exc:
        print(f"fleetnode: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fleetnode: interrupted", file=sys.stderr)
        return 1
