"""Stock Antminer web interface on port 80: lighttpd with HTTP Digest auth in front of CGIs.

Digest is checked for real (MD5, qop=auth, realm `antMiner Configuration`, user root): the
nonce is an HMAC of its own timestamp, so any nonce we issued is accepted for a while without
per-miner storage, and a forged or expired one is refused (expired ones with `stale=true`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from typing import Any

from aiohttp import web

from miners.sim import antminer_payloads as ap
from miners.sim.logs import log_lines
from miners.sim.spec import ANTMINER_USER
from miners.sim.state import Miner, Pool
from miners.sim.web import Call, Hooks, HttpError, Router, json_response, same_secret

REALM = "antMiner Configuration"
NONCE_TTL_S = 600
SECRET = os.urandom(32)
_PARAM = re.compile(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
PAGE_401 = (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html>\n<html><head>'
    "<title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>\n"
)
PAGE = "<!DOCTYPE html><html><head><title>Antminer</title></head><body>Antminer</body></html>"
WORK_MODES = {"0": 0, "1": 1, "2": 2}
routes = Router()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def make_nonce(now: float) -> str:
    stamp = f"{int(now):08x}"
    return stamp + hmac.new(SECRET, stamp.encode(), hashlib.sha256).hexdigest()[:24]


def nonce_state(nonce: str, now: float) -> str:
    """ "ok", "stale" (ours but old) or "bad" (not issued by us)."""
    stamp, mac = nonce[:8], nonce[8:]
    expected = hmac.new(SECRET, stamp.encode(), hashlib.sha256).hexdigest()[:24]
    if len(nonce) != 32 or not same_secret(mac, expected):
        return "bad"
    try:
        issued = int(stamp, 16)
    except ValueError:
        return "bad"
    return "ok" if 0 <= now - issued <= NONCE_TTL_S else "stale"


def parse_digest(header: str) -> dict[str, str] | None:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "digest":
        return None
    return {
        k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v
        for k, v in _PARAM.findall(rest)
    }


def challenge(now: float, stale: bool = False) -> web.Response:
    value = (
        f'Digest realm="{REALM}", charset="UTF-8", algorithm="MD5", '
        f'nonce="{make_nonce(now)}", qop="auth"'
    )
    if stale:
        value += ", stale=true"
    return web.Response(
        status=401, text=PAGE_401, content_type="text/html", headers={"WWW-Authenticate": value}
    )


def check_digest(m: Miner, request: web.BaseRequest, now: float) -> str:
    """ "ok", "stale" or "denied" for the request's Authorization header."""
    params = parse_digest(request.headers.get("Authorization", ""))
    if not params or params.get("username") != ANTMINER_USER or params.get("realm") != REALM:
        return "denied"
    nonce, uri, response = (
        params.get("nonce", ""),
        params.get("uri", ""),
        params.get("response", ""),
    )
    if uri != request.raw_path and uri != request.path:
        return "denied"
    state = nonce_state(nonce, now)
    if state != "ok":
        return "stale" if state == "stale" else "denied"
    ha1 = _md5(f"{ANTMINER_USER}:{REALM}:{m.password}")
    ha2 = _md5(f"{request.method}:{uri}")
    qop = params.get("qop")
    if qop == "auth":
        expected = _md5(
            f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}"
        )
    elif qop is None:
        expected = _md5(f"{ha1}:{nonce}:{ha2}")
    else:
        return "denied"
    if m.has_fault("wrong_password") or not same_secret(response.lower(), expected):
        return "denied"
    return "ok"


class AntminerWeb:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    async def dispatch(self, miner: Miner, request: web.BaseRequest) -> web.StreamResponse:
        call = Call(miner, request, self.hooks, {})
        auth = check_digest(miner, request, call.now)
        if auth != "ok":
            return challenge(call.now, stale=auth == "stale")
        path = "/" if request.path in ("/", "/index.html") else request.path
        found = routes.match(path)
        method = "GET" if request.method == "HEAD" else request.method  # lighttpd serves HEAD
        route = found[0].get(method) if found else None
        if route is None:
            return web.Response(status=404, text="404 Not Found", content_type="text/html")
        try:
            return await route.handler(call)
        except HttpError as exc:
            return json_response({"stats": "error", "code": exc.code, "msg": exc.message})


def _ok(code: str, msg: str = "OK!") -> web.Response:
    return json_response({"stats": "success", "code": code, "msg": msg})


async def _json_body(call: Call, code: str) -> dict[str, Any]:
    """CGIs take JSON whatever the Content-Type says (the stock web UI posts it as a form)."""
    try:
        data = json.loads(await call.request.read() or b"{}")
    except ValueError:
        raise HttpError(200, code, "Invalid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(200, code, "Invalid JSON")
    return data


@routes.route("GET", "/")
async def index(call: Call) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.route("GET", "/cgi-bin/get_system_info.cgi")
async def system_info(call: Call) -> web.Response:
    m = call.miner
    return json_response(
        {
            "minertype": m.model.name,
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": m.mac,
            "hostname": "Antminer",
            "ipaddress": m.host,
            "netmask": "255.0.0.0",
            "gateway": "",
            "dnsservers": "",
            "system_mode": "GNU/Linux",
            "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT Thu May 26 11:50:28 CST 2022",
            "system_filesystem_version": m.model.firmware,
            "firmware_type": "Release",
            "serinum": m.serial,
        }
    )


@routes.route("GET", "/cgi-bin/miner_type.cgi")
async def miner_type(call: Call) -> web.Response:
    """Stock firmware's model page; scanners (pyasic-rs among them) ask it first."""
    m = call.miner
    return json_response(
        {"miner_type": m.model.name, "subtype": "", "fw_version": m.model.firmware}
    )


def miner_conf(m: Miner) -> dict[str, Any]:
    pools = [{"url": p.url, "user": p.user, "pass": p.password} for p in m.pools[:3]]
    pools += [{"url": "", "user": "", "pass": ""}] * (3 - len(pools))
    return {
        "pools": pools,
        "api-listen": True,
        "api-network": True,
        "api-groups": "A:stats:pools:devs:summary:version",
        "api-allow": "A:0/0,W:*",
        "bitmain-fan-ctrl": m.fan_mode == "Manual",
        "bitmain-fan-pwm": str(m.fan_pct),
        "bitmain-use-vil": True,
        "bitmain-freq": "525",
        "bitmain-voltage": "1320",
        "bitmain-ccdelay": "0",
        "bitmain-pwth": "0",
        "bitmain-work-mode": str(m.work_mode),
        "bitmain-freq-level": "100",
    }


@routes.route("GET", "/cgi-bin/get_miner_conf.cgi")
async def get_miner_conf(call: Call) -> web.Response:
    return json_response(miner_conf(call.miner))


def _work_mode(value: Any) -> int:
    mode = WORK_MODES.get(str(value).strip()) if not isinstance(value, bool) else None
    if mode is None:
        raise HttpError(200, "M001", f"invalid work mode {value!r}")
    return mode


def _pools(value: Any) -> list[Pool]:
    if not isinstance(value, list) or len(value) > 3:
        raise HttpError(200, "M001", "pools must be a list of at most 3 entries")
    pools: list[Pool] = []
    for item in value:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k, ""), str) for k in ("url", "user", "pass")
        ):
            raise HttpError(200, "M001", "each pool needs string url, user and pass")
        if item.get("url"):
            pools.append(Pool(item["url"], item.get("user", ""), item.get("pass", ""), len(pools)))
    return pools


@routes.route("POST", "/cgi-bin/set_miner_conf.cgi")
async def set_miner_conf(call: Call) -> web.Response:
    data = await _json_body(call, "M001")
    m = call.miner
    raw_mode = data.get("miner-mode", data.get("bitmain-work-mode"))
    mode = None if raw_mode is None else _work_mode(raw_mode)
    pools = _pools(data["pools"]) if "pools" in data else None
    fan_manual = data.get("bitmain-fan-ctrl")
    pwm = data.get("bitmain-fan-pwm")
    if pwm is not None:
        try:
            pwm = int(str(pwm))
        except ValueError:
            raise HttpError(200, "M001", "bitmain-fan-pwm must be 0-100") from None
        if not 0 <= pwm <= 100:
            raise HttpError(200, "M001", "bitmain-fan-pwm must be 0-100")
    m.settle(call.now)
    if mode is not None:
        if m.work_mode == 1 and mode != 1:
            m.restart_mining(call.now)
        m.work_mode = mode
    if pools is not None:
        m.set_pools(pools, call.now)
    if fan_manual is not None:
        m.fan_mode = "Manual" if fan_manual in (True, "true", 1, "1") else "Auto"
    if pwm is not None:
        m.fan_pct = pwm
    return _ok("M000")


@routes.route("POST", "/cgi-bin/blink.cgi")
async def blink(call: Call) -> web.Response:
    data = await _json_body(call, "B001")
    on = data.get("blink") in (True, "true", "1", 1)
    call.miner.locate(on, 0, call.now)
    return json_response({"code": "B000" if on else "B100"})


@routes.route("GET", "/cgi-bin/get_blink_status.cgi")
async def blink_status(call: Call) -> web.Response:
    return json_response({"blink": call.miner.locate_on(call.now)})


async def reboot(call: Call) -> web.Response:
    call.hooks.reboot(call.miner)
    return _ok("R000", "Rebooting")


routes.add("GET", "/cgi-bin/reboot.cgi", reboot)
routes.add("POST", "/cgi-bin/reboot.cgi", reboot)


@routes.route("POST", "/cgi-bin/passwd.cgi")
async def passwd(call: Call) -> web.Response:
    data = await _json_body(call, "P001")
    m = call.miner
    current, new, confirm = data.get("curPwd"), data.get("newPwd"), data.get("confirmPwd")
    if not isinstance(current, str) or not same_secret(current, m.password):
        raise HttpError(200, "P001", "Current password error!")
    if not isinstance(new, str) or not new or new != confirm:
        raise HttpError(200, "P002", "New passwords do not match!")
    m.password = new
    m.factory = False
    return _ok("P000")


@routes.route("GET", "/cgi-bin/get_kernel_log.cgi")
async def kernel_log(call: Call) -> web.Response:
    lines = log_lines(call.miner, "kernel", 300, call.now)
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _envelope(m: Miner, msg: str, now: float) -> dict[str, Any]:
    return {
        "STATUS": {"STATUS": "S", "when": int(now), "Msg": msg, "api_version": "1.0.0"},
        "INFO": {
            "miner_version": ap.MINER_VERSION,
            "CompileTime": m.model.firmware,
            "type": m.model.name,
        },
    }


def _rates(f: ap.Figures) -> dict[str, Any]:
    return {
        "elapsed": f.elapsed,
        "rate_5s": f.ghs_5s,
        "rate_30m": f.ghs_30m,
        "rate_avg": f.ghs_av,
        "rate_ideal": f.ideal_ghs,
        "rate_unit": "GH/s",
    }


@routes.route("GET", "/cgi-bin/summary.cgi")
async def summary(call: Call) -> web.Response:
    m, now = call.miner, call.now
    f = ap.Figures(m, now)
    hot = m.has_fault("overheat")
    flags = [
        ("rate", f.hashing),
        ("network", bool(m.active_pool())),
        ("fans", True),
        ("temp", not hot),
    ]
    body = _envelope(m, "summary", now)
    body["SUMMARY"] = [
        {
            **_rates(f),
            "hw_all": f.hw,
            "bestshare": int(f.accepted * ap.DIFFICULTY * 3.7),
            "status": [
                {"type": t, "status": "s" if ok else "e", "code": 0 if ok else 1, "msg": ""}
                for t, ok in flags
            ],
        }
    ]
    return json_response(body)


@routes.route("GET", "/cgi-bin/stats.cgi")
async def stats(call: Call) -> web.Response:
    m, now = call.miner, call.now
    f = ap.Figures(m, now)
    dead = m.dead_board()
    chains = [
        {
            "index": i,
            "freq_avg": 525 if ths else 0,
            "rate_ideal": round(f.ideal_ghs / m.model.boards, 2),
            "rate_real": round(ths * 1000, 2),
            "asic_num": 0 if i == dead else m.model.asics_per_board,
            "temp_pic": [round(f.pcb[i] - 5)] * 4,
            "temp_pcb": [round(f.pcb[i])] * 4,
            "temp_chip": [round(f.chips[i])] * 4,
            "hw": f.hw // m.model.boards,
            "eeprom_loaded": True,
            "sn": m.board_serial(i),
            "hwp": 0.0,
        }
        for i, ths in enumerate(f.chain_ths)
    ]
    body = _envelope(m, "stats", now)
    body["STATS"] = [
        {
            **_rates(f),
            "chain_num": m.model.boards,
            "fan_num": len(f.fans),
            "fan": f.fans,
            "hwp_total": 0.0,
            "miner-mode": m.work_mode,
            "freq-level": 100,
            "chain": chains,
        }
    ]
    return json_response(body)


@routes.route("GET", "/cgi-bin/pools.cgi")
async def pools(call: Call) -> web.Response:
    m, now = call.miner, call.now
    body = _envelope(m, "pools", now)
    body["POOLS"] = [
        {
            "index": p["POOL"],
            "url": p["URL"],
            "user": p["User"],
            "status": p["Status"],
            "priority": p["Priority"],
            "getworks": p["Getworks"],
            "accepted": p["Accepted"],
            "rejected": p["Rejected"],
            "discarded": 0,
            "stale": 0,
            "diff": p["Diff"],
            "diff1": 0,
            "diffa": p["Difficulty Accepted"],
            "diffr": p["Difficulty Rejected"],
            "diffs": 0,
            "lsdiff": p["Last Share Difficulty"],
            "lstime": "0:00:02" if p["Accepted"] else "0",
        }
        for p in ap.pools(m, now)
    ]
    return json_response(body)
