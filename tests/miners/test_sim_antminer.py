"""Antminer simulator: CGMiner RPC on 4028 and the digest-protected web CGI on 80."""

import asyncio
import json

import aiohttp
import pytest

from tests.miners.conftest import antminer_web, digest_header, rpc, rpc_raw

PW = "s3cretpw!"


async def test_rpc_reply_is_one_nul_terminated_object_then_close(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b'{"command":"version"}')
    assert raw.endswith(b"\x00") and raw.count(b"\x00") == 1  # read() returned: server closed
    reply = json.loads(raw[:-1])
    assert reply["STATUS"][0]["STATUS"] == "S"
    assert reply["VERSION"][0]["Type"].startswith("Antminer")
    assert reply["id"] == 1


async def test_rpc_request_split_across_packets_and_half_close(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    reader, writer = await asyncio.open_connection(entry["host"], entry["ports"]["rpc"])
    writer.write(b'{"comm')
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b'and":"summary"}')
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert json.loads(raw[:-1])["SUMMARY"][0]["Elapsed"] >= 0
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b"  ", half_close=True)
    assert raw == b""  # nothing asked, nothing answered
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b'{"command": ', half_close=True)
    assert json.loads(raw[:-1])["STATUS"][0]["STATUS"] == "E"


async def test_rpc_sections_are_uppercase_and_carry_data(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    for command, section in (("summary", "SUMMARY"), ("pools", "POOLS"), ("devs", "DEVS"),
                             ("stats", "STATS"), ("devdetails", "DEVDETAILS")):  # fmt: skip
        reply = await rpc(entry, command)
        assert reply["STATUS"][0]["STATUS"] == "S", command
        assert reply[section], command
    summary = (await rpc(entry, "summary"))["SUMMARY"][0]
    assert summary["GHS 5s"] > 100_000 and "Hardware Errors" in summary
    stats = (await rpc(entry, "stats"))["STATS"]
    assert stats[0]["Type"] == entry["model"]
    assert stats[1]["chain_acn1"] == 110 and isinstance(stats[1]["chain_rate1"], str)
    pools = (await rpc(entry, "pools"))["POOLS"]
    assert pools[0]["Status"] == "Alive" and pools[0]["Stratum Active"] is True


async def test_rpc_multi_command_and_errors(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    reply = await rpc(entry, "summary+pools+devs")
    assert set(reply) == {"summary", "pools", "devs", "id"}
    assert reply["summary"][0]["SUMMARY"][0]["Elapsed"] >= 0
    assert reply["pools"][0]["STATUS"][0]["STATUS"] == "S"
    for bad in ("frobnicate", "summary+frobnicate"):
        reply = await rpc(entry, bad)
        assert reply["STATUS"][0]["STATUS"] == "E", bad
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b'{"command": 5}')
    assert json.loads(raw[:-1])["STATUS"][0]["STATUS"] == "E"


async def test_rpc_parameter_switches_pools(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    before = [p["URL"] for p in (await rpc(entry, "pools"))["POOLS"]]
    reply = await rpc(entry, "switchpool", "1")
    assert reply["STATUS"][0]["STATUS"] == "S" and reply["STATUS"][0]["Code"] == 27
    after = [p["URL"] for p in (await rpc(entry, "pools"))["POOLS"]]
    assert after == [before[1], before[0]]
    assert (await rpc(entry, "switchpool"))["STATUS"][0]["Code"] == 24
    assert (await rpc(entry, "switchpool", "9"))["STATUS"][0]["Code"] == 25
    assert (await rpc(entry, "disablepool", "1"))["STATUS"][0]["STATUS"] == "S"
    assert (await rpc(entry, "pools"))["POOLS"][1]["Status"] == "Dead"


async def test_rpc_text_dialect(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b"summary|")
    text = raw.rstrip(b"\x00").decode()
    assert text.startswith("STATUS=S,") and "|SUMMARY,Elapsed=" in text
    # cgminer prints booleans as true/false, and joins exist only in the JSON dialect
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b"pools|")
    assert b",Stratum Active=true," in raw and b"True" not in raw and b"False" not in raw
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b"summary+pools|")
    assert raw.startswith(b"STATUS=E,") and b"Code=14," in raw and raw.endswith(b"|\x00")


async def test_rpc_invalid_json_is_answered_without_waiting_for_eof(sim_fleet):
    """Real cgminer answers whatever one read brought; a client that sends a broken request
    and waits (no half-close) gets "Invalid JSON" promptly, not after the 10 s read timeout."""
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    for payload in (b'{"command":"summ', b'{"command":"summary"}}', b"{nonsense"):
        reader, writer = await asyncio.open_connection(entry["host"], entry["ports"]["rpc"])
        try:
            writer.write(payload)
            raw = await asyncio.wait_for(reader.read(), 3)
        finally:
            writer.close()
        reply = json.loads(raw.rstrip(b"\x00"))
        assert reply["STATUS"][0]["STATUS"] == "E" and reply["STATUS"][0]["Code"] == 23


async def test_rpc_quirk_mode_glues_stats_objects(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW, quirks=True)
    entry = fleet.inventory[0]
    raw = await rpc_raw(entry["host"], entry["ports"]["rpc"], b'{"command":"stats"}')
    assert b'}{"STATS":0' in raw
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw[:-1])
    assert json.loads((await rpc_raw(entry["host"], 4028 + fleet.spec.port_offset,
                                     b'{"command":"summary"}'))[:-1])  # fmt: skip


async def test_web_root_asks_for_digest_with_the_real_realm(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    async with http.get(f"http://{entry['host']}:{entry['ports']['http']}/") as resp:
        assert resp.status == 401
        challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Digest ")
    assert 'realm="antMiner Configuration"' in challenge and 'qop="auth"' in challenge


async def test_miner_type_page_names_the_model(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    status, info = await antminer_web(http, entry, "GET", "/cgi-bin/miner_type.cgi")
    assert status == 200
    assert info["miner_type"] == entry["model"] and "subtype" in info


async def test_digest_checks_the_password_and_the_nonce(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    path = "/cgi-bin/get_system_info.cgi"
    status, info = await antminer_web(http, entry, "GET", path)
    assert status == 200
    assert info["serinum"] == entry["serial"] and info["macaddr"] == entry["mac"]
    assert info["minertype"] == entry["model"]
    assert (await antminer_web(http, entry, "GET", path, password="root"))[0] == 401
    url = f"http://{entry['host']}:{entry['ports']['http']}{path}"
    forged = 'Digest realm="antMiner Configuration", nonce="00000000aaaaaaaaaaaaaaaaaaaaaaaa"'
    async with http.get(
        url, headers={"Authorization": digest_header("GET", path, forged, PW)}
    ) as r:
        assert r.status == 401
    async with http.get(url) as first:
        challenge = first.headers["WWW-Authenticate"]
    header = digest_header("GET", "/cgi-bin/other.cgi", challenge, PW)
    async with http.get(url, headers={"Authorization": header}) as r:
        assert r.status == 401  # the digest covers the URI


async def test_aiohttp_digest_middleware_interoperates(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    middleware = aiohttp.DigestAuthMiddleware("root", PW)
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        url = f"http://{entry['host']}:{entry['ports']['http']}/cgi-bin/summary.cgi"
        async with session.get(url) as resp:
            assert resp.status == 200
            body = await resp.json(content_type=None)
    assert body["SUMMARY"][0]["rate_unit"] == "GH/s"


async def test_factory_antminer_is_root_root_without_pools(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=None)
    entry = fleet.inventory[0]
    assert entry["password"] == "root"
    status, conf = await antminer_web(http, entry, "GET", "/cgi-bin/get_miner_conf.cgi")
    assert status == 200 and all(p["url"] == "" for p in conf["pools"])
    assert (await rpc(entry, "pools"))["STATUS"][0]["STATUS"] == "E"
    assert (await rpc(entry, "summary"))["SUMMARY"][0]["GHS 5s"] == 0


async def test_miner_conf_round_trip_and_work_modes(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    _, conf = await antminer_web(http, entry, "GET", "/cgi-bin/get_miner_conf.cgi")
    conf["pools"] = [{"url": "stratum+tcp://new.example:3333", "user": "acct.w1", "pass": "x"}]
    conf["bitmain-work-mode"] = "2"
    status, reply = await antminer_web(
        http, entry, "POST", "/cgi-bin/set_miner_conf.cgi", body=conf
    )
    assert (status, reply["stats"], reply["code"]) == (200, "success", "M000")
    _, again = await antminer_web(http, entry, "GET", "/cgi-bin/get_miner_conf.cgi")
    assert again["pools"][0] == conf["pools"][0] and again["bitmain-work-mode"] == "2"
    low = (await rpc(entry, "summary"))["SUMMARY"][0]["GHS 5s"]

    status, reply = await antminer_web(http, entry, "POST", "/cgi-bin/set_miner_conf.cgi",
                                       body={"miner-mode": 1})  # fmt: skip
    assert reply["code"] == "M000"
    assert (await rpc(entry, "summary"))["SUMMARY"][0]["GHS 5s"] == 0
    assert fleet.miner(entry["host"]).power_w(0) < 50

    await antminer_web(http, entry, "POST", "/cgi-bin/set_miner_conf.cgi", body={"miner-mode": 0})
    normal = (await rpc(entry, "summary"))["SUMMARY"][0]["GHS 5s"]
    assert normal > low > 0
    for bad in ({"miner-mode": 7}, {"miner-mode": "sleep"}, {"pools": "x"}):
        _, reply = await antminer_web(http, entry, "POST", "/cgi-bin/set_miner_conf.cgi", body=bad)
        assert reply["stats"] == "error", bad


async def test_waking_from_sleep_starts_a_new_average(sim_fleet, http, clock):
    """ "GHS av" is the average of the current run: after sleep -> normal it must not divide
    the whole uptime's work by the few seconds since waking."""
    fleet = await sim_fleet(antminer=1, password=PW, clock=clock)
    entry = fleet.inventory[0]
    miner = fleet.miner(entry["host"])
    clock.advance(3600)  # an hour of hashing
    for mode in (1, 0):
        _, reply = await antminer_web(
            http, entry, "POST", "/cgi-bin/set_miner_conf.cgi", body={"miner-mode": mode}
        )
        assert reply["code"] == "M000"
    clock.advance(10)
    summary = (await rpc(entry, "summary"))["SUMMARY"][0]
    assert summary["GHS av"] == pytest.approx(miner.rate_ths() * 1000, rel=0.05)


async def test_head_is_answered_like_get(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    for path in ("/", "/cgi-bin/get_system_info.cgi"):
        status, _ = await antminer_web(http, entry, "HEAD", path)
        assert status == 200, path


async def test_blink_reboot_passwd_logs(sim_fleet, http, clock):
    fleet = await sim_fleet(antminer=1, password=PW, reboot_downtime=15, clock=clock)
    entry = fleet.inventory[0]
    miner = fleet.miner(entry["host"])
    _, reply = await antminer_web(http, entry, "POST", "/cgi-bin/blink.cgi", body={"blink": "true"})
    assert reply == {"code": "B000"} and miner.locate_on(miner.boot_at + 1)
    _, reply = await antminer_web(
        http, entry, "POST", "/cgi-bin/blink.cgi", body={"blink": "false"}
    )
    assert reply == {"code": "B100"}
    status, text = await antminer_web(http, entry, "GET", "/cgi-bin/get_kernel_log.cgi")
    assert status == 200 and isinstance(text, str) and text.strip()
    body = {"curPwd": "wrong", "newPwd": "n3w-pass", "confirmPwd": "n3w-pass"}
    _, reply = await antminer_web(http, entry, "POST", "/cgi-bin/passwd.cgi", body=body)
    assert reply["code"] == "P001"
    body["curPwd"] = PW
    _, reply = await antminer_web(http, entry, "POST", "/cgi-bin/passwd.cgi", body=body)
    assert reply["code"] == "P000"
    assert (await antminer_web(http, entry, "GET", "/cgi-bin/stats.cgi"))[0] == 401
    status, stats = await antminer_web(
        http, entry, "GET", "/cgi-bin/stats.cgi", password="n3w-pass"
    )
    assert status == 200 and len(stats["STATS"][0]["chain"]) == 3

    await antminer_web(http, entry, "POST", "/cgi-bin/reboot.cgi", password="n3w-pass")
    with pytest.raises(OSError):
        await rpc(entry, "summary")
    clock.advance(15)
    assert (await rpc(entry, "summary"))["SUMMARY"][0]["Elapsed"] == 0


async def test_non_ascii_passwords_are_refused_not_crashed(sim_fleet, http):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    body = {"curPwd": "pässwörd", "newPwd": "x", "confirmPwd": "x"}
    status, reply = await antminer_web(http, entry, "POST", "/cgi-bin/passwd.cgi", body=body)
    assert (status, reply["code"]) == (200, "P001")


async def test_stats_report_the_measured_power_like_stock_firmware(sim_fleet):
    fleet = await sim_fleet(antminer=1, password=PW)
    entry = fleet.inventory[0]
    reply = await rpc(entry, "stats")
    detail = reply["STATS"][1]
    watts = int(detail["chain_power"].removesuffix(" W"))
    assert abs(watts - fleet.miner(entry["host"]).power_w(fleet.clock.now())) < 200
