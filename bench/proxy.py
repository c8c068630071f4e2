"""`python -m bench.proxy [--quick] [--redis URL]`: the miner proxy against the same simulated
ProtoOS rig three ways — direct (bearer token to the simulator), through Rigwarden's
``/api-proxy/miners/<id>/api/v1/...`` (daphne ``config.asgi:application``, a real session
cookie, CSRF + Origin on PUTs), and through nginx ``proxy_pass`` with the token injected by
``proxy_set_header`` (the reference; skipped with a note when ``nginx`` is not installed).

Workload per path: ``GET /api/v1/mining`` and small ``PUT /api/v1/mining/target`` bodies; p50
latency at concurrency 1 and throughput (req/s) at concurrency ``--concurrency`` for
``--seconds``. The load generator (aiohttp) runs in this process on the same 2-core box as
daphne, nginx and the simulator, so every figure includes that contention. With ``--redis`` the
proxy keeps tokens and rate counters in Redis as deployed; without, in-process. Prints one JSON
object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._django import ROOT, django_on_scratch_db, make_world, ms, pct

PASSWORD = "bench-proxy-pw-1"
TARGET = {"proxy_rps": 1000.0, "added_p50_ms": 1.5}
PUT_BODY = json.dumps({"power_target_watts": 3200}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{proc.args!r} exited: {log.read_text(errors='replace')[-800:]}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as reply:
                    if reply.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 60 s")


async def start_rig(work: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    inventory = work / "inventory.json"
    offset = "0" if os.geteuid() == 0 else "20000"
    proc = spawn(
        [
            sys.executable,
            "-m",
            "miners.sim",
            "--proto",
            "1",
            "--base",
            "127.91.0.1",
            "--password",
            PASSWORD,
            "--no-tls",
            "--port-offset",
            offset,
            "--inventory",
            str(inventory),
        ],
        work / "sim.log",
    )
    deadline = time.monotonic() + 30
    while not (inventory.exists() and inventory.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("simulator did not start: " + (work / "sim.log").read_text())
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    entry = json.loads(inventory.read_text())[0]
    host, port = entry["host"], int(entry["ports"]["http"])
    await wait_http(f"http://{host}:{port}/api/v1/system", proc, work / "sim.log")
    return proc, host, port


async def login(host: str, port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{host}:{port}/api/v1/auth/login", json={"password": PASSWORD}
        ) as reply,
    ):
        return str((await reply.json())["access_token"])


async def load(
    base: str, path: str, headers: dict[str, str], *, method: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` workers repeating one request for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    body = PUT_BODY if method == "PUT" else None
    async with aiohttp.ClientSession(connector=connector) as session:
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                async with session.request(method, base + path, headers=headers, data=body) as r:
                    await r.read()
                    if r.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": ms(pct(latencies, 0.5)),
        "p99_ms": ms(pct(latencies, 0.99)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    base: str,
    prefix: str,
    headers: dict[str, str],
    put_headers: dict[str, str],
    args: Any,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """p50 at concurrency 1 and req/s at ``args.concurrency``; with ``server_pid`` also the
    server process's CPU per request at concurrency 1 (what the proxy costs, whatever else
    the box is busy with — latency on a shared box is not)."""
    out: dict[str, Any] = {}
    for name, method, hdrs in (("get", "GET", headers), ("put", "PUT", put_headers)):
        path = prefix + ("/api/v1/mining" if method == "GET" else "/api/v1/mining/target")
        await load(base, path, hdrs, method=method, concurrency=4, seconds=0.5)  # warm up
        cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        latency = await load(
            base, path, hdrs, method=method, concurrency=1, seconds=args.seconds / 2
        )
        if server_pid:
            spent = cpu_seconds(server_pid) - cpu_before
            latency["server_cpu_ms_per_request"] = round(
                spent * 1000 / max(latency["requests"], 1), 3
            )
        throughput = await load(
            base, path, hdrs, method=method, concurrency=args.concurrency, seconds=args.seconds
        )
        out[name] = {"c1": latency, f"c{args.concurrency}": throughput}
    return out


NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    upstream rig {{ server {host}:{rig_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location /api/v1/ {{
            proxy_pass http://rig;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {token}";
            proxy_hide_header Set-Cookie;
            proxy_hide_header Server;
            add_header Cache-Control no-store;
            add_header X-Content-Type-Options nosniff;
        }}
    }}
}}
"""


def start_nginx(work: Path, host: str, rig_port: int, token: str) -> tuple[Any, int] | None:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(work=work, host=host, rig_port=rig_port, port=port, token=token)
    )
    proc = spawn([binary, "-c", str(conf), "-g", "daemon off;"], work / "nginx.log")
    return proc, port


def session_for(user: Any) -> tuple[str, str]:
    """(cookie header, CSRF token) of a signed-in browser."""
    from django.conf import settings
    from django.http import HttpRequest
    from django.middleware.csrf import get_token
    from django.test import Client

    client = Client()
    client.force_login(user)
    request = HttpRequest()
    csrf = get_token(request)
    cookie = (
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; "
        f"{settings.CSRF_COOKIE_NAME}={request.META['CSRF_COOKIE']}"
    )
    return cookie, csrf


def make_rig(world: Any, host: str, port: int) -> Any:
    from accounts.models import Membership, Role, User
    from fleet.models import Miner
    from fleet.services.credentials import credentials_store

    operator = User.objects.create_user(email="operator@bench.example", password=None)
    Membership.unscoped.create(
        user=operator, org=world.org, role=Role.unscoped.get(slug="operator", org__isnull=True)
    )
    miner = Miner.unscoped.create(
        org=world.org,
        site=world.sites[0],
        identifier="serial:bench-proxy",
        name="bench-rig",
        host=host,
        port=port,
        scheme="http",
        driver="protoos",
    )
    credentials_store(miner, username="", password=PASSWORD)
    return miner, operator


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    sim, host, rig_port = await start_rig(work)
    daphne = nginx = None
    try:
        world = await sync_to_async(make_world)(1, slug="bench")
        miner, operator = await sync_to_async(make_rig)(world, host, rig_port)
        cookie, csrf = await sync_to_async(session_for)(operator)
        result: dict[str, Any] = {
            "target": TARGET,
            "redis": bool(args.redis),
            "load_average_at_start": os.getloadavg(),
        }

        token = await login(host, rig_port)
        bearer = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        put_bearer = {**bearer, "Content-Type": "application/json"}
        result["direct"] = await measure(f"http://{host}:{rig_port}", "", bearer, put_bearer, args)

        started = start_nginx(work, host, rig_port, token)
        if started is None:
            result["nginx"] = "not installed (apt-get install nginx)"
        else:
            nginx, nginx_port = started
            await wait_http(
                f"http://127.0.0.1:{nginx_port}/api/v1/system", nginx, work / "nginx.log"
            )
            plain = {"Accept": "application/json"}
            result["nginx"] = await measure(
                f"http://127.0.0.1:{nginx_port}",
                "",
                plain,
                {**plain, "Content-Type": "application/json"},
                args,
            )

        port = free_port()
        env = {**os.environ, "PROXY_BENCH": "1"}
        daphne = spawn(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "config.asgi:application",
            ],
            work / "daphne.log",
            env,
        )
        await wait_http(f"http://127.0.0.1:{port}/healthz", daphne, work / "daphne.log")
        origin = f"http://127.0.0.1:{port}"
        browser = {"Cookie": cookie, "Accept": "application/json", "Host": f"127.0.0.1:{port}"}
        put_browser = {
            **browser,
            "Content-Type": "application/json",
            "X-CSRFToken": csrf,
            "Origin": origin,
        }
        result["proxy"] = await measure(
            origin, f"/api-proxy/miners/{miner.pk}", browser, put_browser, args, daphne.pid
        )
        result["load_average_at_end"] = os.getloadavg()
        c = f"c{args.concurrency}"
        for kind in ("get", "put"):
            proxy, direct = result["proxy"][kind], result["direct"][kind]
            result[f"{kind}_added_p50_ms"] = round(
                proxy["c1"]["p50_ms"] - direct["c1"]["p50_ms"], 2
            )
            result[f"{kind}_proxy_vs_direct_rps"] = round(proxy[c]["rps"] / direct[c]["rps"], 3)
            if isinstance(result["nginx"], dict):
                result[f"{kind}_proxy_vs_nginx_rps"] = round(
                    proxy[c]["rps"] / result["nginx"][kind][c]["rps"], 3
                )
        return result
    finally:
        for proc in (daphne, nginx, sim):
            if proc is not None:
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s windows")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis", default="", help="REDIS_URL for the proxy's shared state")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 2.0
    extra = {"PROXY_RATE_PER_MINUTE": "100000000", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    with (
        tempfile.TemporaryDirectory(prefix="rw-bench-proxy-") as tmp,
        django_on_scratch_db("proxy", extra_env=extra),
    ):
        if args.redis:
            os.environ["REDIS_URL"] = args.redis  # the daphne child's, not this process's
        result = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
