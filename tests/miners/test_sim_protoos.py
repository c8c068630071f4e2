"""ProtoOS simulator at the protocol level, with plain aiohttp requests (not our drivers)."""

import asyncio

import aiohttp
import pytest

from miners.sim import GroupSpec

PW = "s3cretpw!"


async def test_public_routes_and_dashboard_page(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    for path in ("/api/v1/system", "/api/v1/system/status", "/api/v1/pairing/info",
                 "/api/v1/network", "/api/v1/hardware", "/api/v1/hashboards",
                 "/api/v1/hardware/psus", "/api/v1/power-supplies"):  # fmt: skip
        status, _ = await client.call("GET", path, auth=False)
        assert status == 200, path
    status, page = await client.call("GET", "/", auth=False)
    assert status == 200 and "Proto OS" in page
    _, info = await client.call("GET", "/api/v1/pairing/info", auth=False)
    assert info == {"mac": fleet.inventory[0]["mac"], "cb_sn": fleet.inventory[0]["serial"]}
    _, system = await client.call("GET", "/api/v1/system", auth=False)
    assert system["system-info"]["cb_sn"] == fleet.inventory[0]["serial"]


async def _raw_http(host: str, port: int, request: bytes, half_close: bool) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        if half_close:
            writer.write_eof()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


async def test_half_closed_and_pipelined_requests_are_answered(sim_fleet):
    """A client that sends its request and shuts down its sending side (`nc -N`, scanners)
    still gets the reply, then the close; pipelined requests before the EOF all get theirs."""
    fleet = await sim_fleet(proto=1, antminer=1, password=PW)
    proto_entry, antminer_entry = fleet.inventory
    one = b"GET /api/v1/pairing/info HTTP/1.1\r\nHost: rig\r\n\r\n"
    two = one + b"GET /api/v1/system/status HTTP/1.1\r\nHost: rig\r\n\r\n"
    raw = await _raw_http(proto_entry["host"], proto_entry["ports"]["http"], one, True)
    assert raw.startswith(b"HTTP/1.1 200") and proto_entry["serial"].encode() in raw
    raw = await _raw_http(proto_entry["host"], proto_entry["ports"]["http"], two, True)
    assert raw.count(b"HTTP/1.1 200") == 2 and b"password_set" in raw
    raw = await _raw_http(antminer_entry["host"], antminer_entry["ports"]["http"],
                          b"GET / HTTP/1.1\r\nHost: rig\r\n\r\n", True)  # fmt: skip
    assert raw.startswith(b"HTTP/1.1 401") and b"antMiner Configuration" in raw
    raw = await _raw_http(proto_entry["host"], proto_entry["ports"]["http"],
                          b"GET / HTTP/1.0\r\n\r\n", False)  # fmt: skip
    assert raw.startswith(b"HTTP/1.0 200") and b"Proto OS" in raw


async def test_https_uses_a_self_signed_certificate(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0], https=True)
    assert (await client.call("GET", "/api/v1/pairing/info", auth=False))[0] == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await client.http.get(client.base + "/api/v1/system")


async def test_bearer_routes_answer_401_with_an_error_object(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    for token in (None, "not-a-token"):
        status, body = await client.call("GET", "/api/v1/mining", token=token)
        assert status == 401
        assert body["error"]["code"] == "UNAUTHORIZED" and body["error"]["message"]
    status, body = await client.call("POST", "/api/v1/auth/login", json={"password": "wrong-one"})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_login_refresh_logout(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    status, tokens = await client.call("POST", "/api/v1/auth/login", json={"password": PW})
    assert status == 200 and set(tokens) == {"access_token", "refresh_token"}
    assert tokens["access_token"].count(".") == 2  # JWT-shaped
    status, fresh = await client.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 200 and set(fresh) == {"access_token"}
    # a refresh does not revoke the token other clients hold (a login would)
    assert (await client.call("GET", "/api/v1/pools", token=tokens["access_token"]))[0] == 200
    assert (await client.call("GET", "/api/v1/pools", token=fresh["access_token"]))[0] == 200
    assert (await client.call("POST", "/api/v1/auth/logout", token=fresh["access_token"]))[0] == 200
    for token in (fresh["access_token"], tokens["access_token"]):
        assert (await client.call("GET", "/api/v1/pools", token=token))[0] == 401
    status, _ = await client.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 401


async def test_only_the_newest_access_token_is_valid(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    first = await client.login()
    second = await client.login()
    assert first != second
    assert (await client.call("GET", "/api/v1/mining", token=first))[0] == 401
    assert (await client.call("GET", "/api/v1/mining", token=second))[0] == 200


async def test_expired_token_is_refused(sim_fleet, proto, clock):
    fleet = await sim_fleet(proto=1, password=PW, token_ttl=3600, clock=clock)
    client = proto(fleet.inventory[0])
    await client.login()
    clock.advance(3599)
    assert (await client.call("GET", "/api/v1/mining"))[0] == 200
    clock.advance(1)
    assert (await client.call("GET", "/api/v1/mining"))[0] == 401


async def test_change_password_revokes_tokens(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    status, body = await client.call(
        "PUT", "/api/v1/auth/change-password",
        json={"current_password": "nope-nope", "new_password": "another-pw"},
    )  # fmt: skip
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    status, _ = await client.call(
        "PUT", "/api/v1/auth/change-password",
        json={"current_password": PW, "new_password": "another-pw"},
    )  # fmt: skip
    assert status == 200
    assert (await client.call("GET", "/api/v1/mining"))[0] == 401
    assert (await client.call("POST", "/api/v1/auth/login", json={"password": PW}))[0] == 401
    await client.login("another-pw")


async def test_factory_state_default_password_gate(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=None)
    entry = fleet.inventory[0]
    assert entry["password"] == "proto"
    client = proto(entry)
    _, status_body = await client.call("GET", "/api/v1/system/status", auth=False)
    assert status_body == {"onboarded": False, "password_set": False}
    await client.login("proto")
    for method, path, body in (
        ("PUT", "/api/v1/mining/target", {"power_target_watts": 3000}),
        ("POST", "/api/v1/mining/stop", None),
        ("PUT", "/api/v1/cooling", {"mode": "Auto"}),
        ("POST", "/api/v1/system/reboot", None),
    ):
        status, err = await client.call(method, path, json=body)
        assert status == 403 and err["error"]["code"] == "DEFAULT_PASSWORD_ACTIVE", path
    pools = [{"url": "stratum+tcp://pool.example:3333", "username": "w1", "priority": 0}]
    assert (await client.call("POST", "/api/v1/pools", json=pools))[0] == 200
    status, _ = await client.call("PUT", "/api/v1/auth/password", json={"password": "first-pw-1"})
    assert status == 200
    status, _ = await client.call("PUT", "/api/v1/auth/password", json={"password": "second-pw"})
    assert status == 403
    status, _ = await client.call("PUT", "/api/v1/mining/target", json={"power_target_watts": 3000})
    assert status == 200
    _, status_body = await client.call("GET", "/api/v1/system/status", auth=False)
    assert status_body == {"onboarded": True, "password_set": True}


async def test_204_before_first_stats_then_nopools_then_mining(sim_fleet, proto, clock):
    fleet = await sim_fleet(proto=1, password=None, stats_delay=3, clock=clock)
    client = proto(fleet.inventory[0])
    await client.login("proto")
    status, body = await client.call("GET", "/api/v1/mining")
    assert status == 204 and body == ""
    clock.advance(3)
    status, body = await client.call("GET", "/api/v1/mining")
    assert status == 200 and body["mining-status"]["status"] == "NoPools"
    assert body["mining-status"]["average_hashrate_ghs"] == 0
    pools = [{"url": "stratum+tcp://pool.example", "username": "w1"}]
    assert (await client.call("POST", "/api/v1/pools", json=pools))[0] == 200
    _, body = await client.call("GET", "/api/v1/mining")
    assert body["mining-status"]["status"] == "PoweringOn"
    clock.advance(3)
    _, body = await client.call("GET", "/api/v1/mining")
    assert body["mining-status"]["status"] == "Mining"
    assert body["mining-status"]["ideal_hashrate_ghs"] > 100_000


async def test_pools_post_replaces_all_and_allows_at_most_three(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    new = [
        {"url": f"stratum+tcp://p{i}.example:3333", "username": f"user{i}", "password": "x",
         "priority": i, "name": f"P{i}"}
        for i in range(3)
    ]  # fmt: skip
    assert (await client.call("POST", "/api/v1/pools", json=new))[0] == 200
    _, body = await client.call("GET", "/api/v1/pools")
    assert [(p["url"], p["user"]) for p in body["pools"]] == [
        (n["url"], n["username"]) for n in new
    ]
    assert body["pools"][0]["status"] == "Active" and body["pools"][1]["status"] == "Idle"
    four = [*new, {"url": "stratum+tcp://p3.example", "username": "u3", "priority": 3}]
    status, err = await client.call("POST", "/api/v1/pools", json=four)
    assert 400 <= status < 500 and "error" in err
    assert len((await client.call("GET", "/api/v1/pools"))[1]["pools"]) == 3
    for bad in ({"url": "x"}, [{"url": "http://nope", "username": "u"}], [{"username": "u"}],
                [{"url": "stratum+tcp://a", "username": 5}]):  # fmt: skip
        status, err = await client.call("POST", "/api/v1/pools", json=bad)
        assert status in (400, 422) and err["error"]["code"], bad
    status, err = await client.call("POST", "/api/v1/pools", data=b"[{not json")
    assert status == 400 and err["error"]["code"] == "INVALID_REQUEST"


async def test_single_pool_routes_and_test_connection(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    status, body = await client.call("GET", "/api/v1/pools/1")
    assert status == 200 and body["pool"]["id"] == 1
    status, _ = await client.call("PUT", "/api/v1/pools/1", json={"username": "renamed"})
    assert status == 200
    assert (await client.call("GET", "/api/v1/pools/1"))[1]["pool"]["user"] == "renamed"
    assert (await client.call("DELETE", "/api/v1/pools/0"))[0] == 200
    _, body = await client.call("GET", "/api/v1/pools")
    assert [p["user"] for p in body["pools"]] == ["renamed"]
    assert (await client.call("GET", "/api/v1/pools/7"))[0] == 422
    assert (await client.call("GET", "/api/v1/pools/abc"))[0] == 400
    ok = {"url": "stratum+tcp://pool.example:3333", "username": "u"}
    assert (await client.call("POST", "/api/v1/pools/test-connection", json=ok))[0] == 200
    dead = {"url": "stratum+tcp://pool.invalid:3333", "username": "u"}
    assert (await client.call("POST", "/api/v1/pools/test-connection", json=dead))[0] == 503


async def test_power_target_range_and_effect(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    _, target = await client.call("GET", "/api/v1/mining/target")
    low, high = target["power_target_min_watts"], target["power_target_max_watts"]
    for watts in (low - 1, high + 1):
        status, err = await client.call(
            "PUT", "/api/v1/mining/target", json={"power_target_watts": watts}
        )
        assert status == 422 and err["error"]["code"] == "OUT_OF_RANGE"
    status, _ = await client.call("PUT", "/api/v1/mining/target", json={"power_target_watts": "3k"})
    assert status == 400
    before = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    status, body = await client.call(
        "PUT",
        "/api/v1/mining/target",
        json={"power_target_watts": low, "performance_mode": "Efficiency"},
    )
    assert status == 200 and body["power_target_watts"] == low
    after = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert after["power_usage_watts"] < before["power_usage_watts"] / 2
    assert after["ideal_hashrate_ghs"] < before["ideal_hashrate_ghs"]
    assert after["power_efficiency_jth"] < before["power_efficiency_jth"]


async def test_start_stop_locate_cooling(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    entry = fleet.inventory[0]
    client = proto(entry)
    await client.login()
    assert (await client.call("POST", "/api/v1/mining/stop"))[0] == 202
    _, body = await client.call("GET", "/api/v1/mining")
    assert body["mining-status"]["status"] == "Stopped"
    assert body["mining-status"]["power_usage_watts"] < 100
    assert (await client.call("POST", "/api/v1/mining/start"))[0] == 202
    _, body = await client.call("GET", "/api/v1/mining")
    assert body["mining-status"]["status"] == "Mining"

    miner = fleet.miner(entry["host"])
    assert (await client.call("POST", "/api/v1/system/locate?led_on_time=0"))[0] == 202
    assert miner.locate_on(miner.boot_at + 10**6)
    assert (await client.call("POST", "/api/v1/system/locate?enable=false"))[0] == 202
    assert not miner.locate_on(miner.boot_at)
    assert (await client.call("POST", "/api/v1/system/locate?enable=maybe"))[0] == 400

    status, body = await client.call(
        "PUT", "/api/v1/cooling", json={"mode": "Manual", "speed_percentage": 90}
    )
    assert status == 200 and body["mode"] == "Manual"
    _, body = await client.call("GET", "/api/v1/cooling")
    assert body["cooling-status"]["fan_mode"] == "Manual"
    assert {f["percentage"] for f in body["cooling-status"]["fans"]} == {90}
    status, body = await client.call("PUT", "/api/v1/cooling", json={"mode": "Off"})
    assert status == 501 and body["error"]["code"] == "NOT_IMPLEMENTED"
    status, _ = await client.call(
        "PUT", "/api/v1/cooling", json={"mode": "Manual", "speed_percentage": 101}
    )
    assert status == 422


async def test_logs_telemetry_hashboards_series(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    status, body = await client.call("GET", "/api/v1/system/logs?lines=5&source=os")
    assert status == 200 and body["logs"]["source"] == "os" and 1 <= body["logs"]["lines"] <= 5
    assert (await client.call("GET", "/api/v1/system/logs?lines=20000"))[0] == 422
    assert (await client.call("GET", "/api/v1/system/logs?source=nope"))[0] == 422
    _, body = await client.call("GET", "/api/v1/telemetry")
    assert set(body) == {"timestamp", "miner"} and body["miner"]["hashrate"]["unit"] == "TH/s"
    _, body = await client.call("GET", "/api/v1/telemetry?level=asic,psu")
    assert "miner" not in body and len(body["psus"]) == 2
    assert len(body["hashboards"][0]["asics"]["hashrate"]["values"]) == 96
    assert (await client.call("GET", "/api/v1/telemetry?level=bogus"))[0] == 400
    _, boards = await client.call("GET", "/api/v1/hashboards", auth=False)
    sn = boards["hashboards-info"][0]["hb_sn"]
    status, body = await client.call("GET", f"/api/v1/hashboards/{sn}")
    assert status == 200 and body["hashboard-stats"]["hb_sn"] == sn
    assert (await client.call("GET", "/api/v1/hashboards/NOPE"))[0] == 422
    for metric in ("hashrate", "temperature", "power", "efficiency"):
        status, body = await client.call("GET", f"/api/v1/{metric}?duration=12h")
        assert status == 200 and len(body[f"{metric}-data"]["data"]) == 144
    assert (await client.call("GET", "/api/v1/hashrate?duration=7d"))[0] == 400


async def test_reboot_makes_the_rig_unreachable_then_fresh(sim_fleet, proto, clock):
    fleet = await sim_fleet(proto=1, password=PW, reboot_downtime=15, clock=clock)
    client = proto(fleet.inventory[0])
    await client.login()
    clock.advance(60)
    _, before = await client.call("GET", "/api/v1/mining")
    assert before["mining-status"]["reboot_uptime_s"] == 60
    assert (await client.call("POST", "/api/v1/system/reboot"))[0] == 202
    async with aiohttp.ClientSession() as fresh:  # no pooled keep-alive connection
        with pytest.raises(aiohttp.ClientConnectionError):
            await fresh.get(client.base + "/api/v1/system")
    with pytest.raises(aiohttp.ClientConnectionError):  # the pooled one is reset
        await client.call("GET", "/api/v1/system", auth=False)
    clock.advance(14)
    with pytest.raises(aiohttp.ClientConnectionError):  # still booting
        await client.call("GET", "/api/v1/system", auth=False)
    clock.advance(1)
    assert (await client.call("GET", "/api/v1/mining"))[0] == 401  # sessions died with it
    await client.login()
    _, after = await client.call("GET", "/api/v1/mining")
    assert after["mining-status"]["reboot_uptime_s"] < before["mining-status"]["reboot_uptime_s"]


async def test_bad_requests_never_crash(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    cases = [
        ("POST", "/api/v1/auth/login", b"{"),
        ("POST", "/api/v1/auth/login", b"[]"),
        ("POST", "/api/v1/auth/login", b'{"password": 5}'),
        ("PUT", "/api/v1/mining/target", b'"x"'),
        ("PUT", "/api/v1/cooling", b'{"mode": 3}'),
        ("PUT", "/api/v1/pools/0", b"null"),
        ("POST", "/api/v1/pools/test-connection", b"{}"),
        ("PUT", "/api/v1/mining/target", b'{"power_target_watts": true}'),
    ]
    for method, path, data in cases:
        status, body = await client.call(method, path, data=data)
        assert status in (400, 422), (path, data, status)
        assert body["error"]["code"] and body["error"]["message"]
    assert (await client.call("DELETE", "/api/v1/mining"))[0] == 405
    assert (await client.call("GET", "/api/v1/unknown/route"))[0] == 404


async def test_non_ascii_credentials_are_refused_not_crashed(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    entry = fleet.inventory[0]
    client = proto(entry)
    status, body = await client.call("POST", "/api/v1/auth/login", json={"password": "pässwörd"})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    reader, writer = await asyncio.open_connection(entry["host"], entry["ports"]["http"])
    writer.write(
        b"GET /api/v1/mining HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\xa4\xc3\xb6\r\n"
        b"Connection: close\r\n\r\n"
    )
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 401")


# -- firmware flavours and the real-firmware facts of miner-apis.md §1 ----------------------

SV2_KEY = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"


async def test_field_flavour_drifts_where_real_rigs_do(sim_fleet, proto):
    """`spec` answers as the OpenAPI file says; `field` as rigs in the field do: fans carry
    `speed_percentage`, `system-info.os.hostname`, PSU `state` in `/power-supplies` only."""
    fleet = await sim_fleet(
        groups=[
            GroupSpec("protoos", 1, password=PW),
            GroupSpec("protoos", 1, password=PW, flavour="field"),
        ]
    )
    seen = {}
    for entry in fleet.inventory:
        client = proto(entry)
        await client.login()
        fan = (await client.call("GET", "/api/v1/cooling"))[1]["cooling-status"]["fans"][0]
        os_info = (await client.call("GET", "/api/v1/system", auth=False))[1]["system-info"]["os"]
        psu = (await client.call("GET", "/api/v1/power-supplies", auth=False))[1]["psus_info"][0]
        hw = (await client.call("GET", "/api/v1/hardware/psus", auth=False))[1]["psus-info"][0]
        seen[fleet.miner(entry["host"]).flavour] = (
            sorted(fan),
            os_info.get("hostname"),
            psu.get("state"),
            "state" in hw,
        )
    hostname = f"proto-{fleet.inventory[1]['serial'][-6:].lower()}"
    assert seen == {
        "spec": (["percentage", "rpm", "slot"], None, None, False),
        "field": (["rpm", "slot", "speed_percentage"], hostname, "Running", False),
    }
    miner = fleet.miner(fleet.inventory[0]["host"])
    miner.flavour = "field"  # switchable on a live rig
    client = proto(fleet.inventory[0])
    await client.login()
    fan = (await client.call("GET", "/api/v1/cooling"))[1]["cooling-status"]["fans"][0]
    assert "speed_percentage" in fan


async def test_slots_count_from_one_and_telemetry_index_from_zero(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()
    boards = (await client.call("GET", "/api/v1/hashboards", auth=False))[1]["hashboards-info"]
    hardware = (await client.call("GET", "/api/v1/hardware", auth=False))[1]["hardware-info"]
    psus = (await client.call("GET", "/api/v1/power-supplies", auth=False))[1]["psus_info"]
    telemetry = (await client.call("GET", "/api/v1/telemetry?level=hashboard,psu"))[1]
    assert [b["slot"] for b in boards] == [1, 2, 3]
    assert [b["slot"] for b in hardware["hashboards-info"]] == [1, 2, 3]
    assert [p["slot"] for p in psus] == [p["slot"] for p in hardware["psus-info"]] == [1, 2]
    assert [b["index"] for b in telemetry["hashboards"]] == [0, 1, 2]
    assert [p["index"] for p in telemetry["psus"]] == [0, 1]


async def test_label_password_factory_state(sim_fleet, proto):
    """A factory rig whose label password isn't `proto`: `{onboarded: false, password_set:
    true}`, the gate is up, pools are writable, the first-password route is closed (the
    password is changed instead), and changing it onboards the rig."""
    label = "Label-7F3K-92QX"
    fleet = await sim_fleet(groups=[GroupSpec("protoos", 1, factory_password=label)])
    entry = fleet.inventory[0]
    assert entry["password"] == label
    client = proto(entry)
    _, body = await client.call("GET", "/api/v1/system/status", auth=False)
    assert body == {"onboarded": False, "password_set": True}
    assert (await client.call("POST", "/api/v1/auth/login", json={"password": "proto"}))[0] == 401
    await client.login(label)
    status, err = await client.call("POST", "/api/v1/mining/stop")
    assert status == 403 and err["error"]["code"] == "DEFAULT_PASSWORD_ACTIVE"
    pools = [{"url": "stratum+tcp://pool.example:3333", "username": "w1"}]
    assert (await client.call("POST", "/api/v1/pools", json=pools))[0] == 200
    assert (await client.call("PUT", "/api/v1/pools/0", json={"name": "main"}))[0] == 200
    status, _ = await client.call("PUT", "/api/v1/auth/password", json={"password": "first-pw-1"})
    assert status == 403
    status, _ = await client.call(
        "PUT", "/api/v1/auth/change-password",
        json={"current_password": label, "new_password": "operator-pw"},
    )  # fmt: skip
    assert status == 200
    _, body = await client.call("GET", "/api/v1/system/status", auth=False)
    assert body == {"onboarded": True, "password_set": True}
    await client.login("operator-pw")
    assert (await client.call("POST", "/api/v1/mining/stop"))[0] == 202


@pytest.mark.parametrize("flavour", ["spec", "field"])
async def test_psu_fault(sim_fleet, proto, flavour):
    fleet = await sim_fleet(proto=1, password=PW, flavour=flavour)
    entry = fleet.inventory[0]
    fleet.faults.set(entry["host"], "psu_fault", psu=1)
    client = proto(entry)
    await client.login()
    psus = (await client.call("GET", "/api/v1/power-supplies", auth=False))[1]["psus_info"]
    assert psus[1]["power"]["output_power_mw"] == 0 and psus[0]["power"]["output_power_mw"] > 0
    errors = (await client.call("GET", "/api/v1/errors"))[1]
    if flavour == "field":
        assert errors == [] and [p["state"] for p in psus] == ["Running", "Error"]
    else:
        assert [(e["source"], e["slot"], e["error_code"]) for e in errors] == [
            ("psu", 2, "PsuFault")
        ]
        assert all("state" not in p for p in psus)
    mining = (await client.call("GET", "/api/v1/mining"))[1]["mining-status"]
    assert mining["status"] == "Mining"  # the other PSU carries the load


async def test_rebooting_rig_answers_pairing_and_drops_the_rest(sim_fleet, proto, clock):
    fleet = await sim_fleet(proto=1, password=PW, reboot_downtime=10, clock=clock)
    entry = fleet.inventory[0]
    client = proto(entry)
    await client.login()
    assert (await client.call("POST", "/api/v1/system/reboot"))[0] == 202
    for https in (False, True):
        booting = proto(entry, https=https)
        status, info = await booting.call("GET", "/api/v1/pairing/info", auth=False)
        assert status == 200 and info["cb_sn"] == entry["serial"]
        for path in ("/api/v1/system", "/api/v1/system/status", "/api/v1/network", "/"):
            with pytest.raises(aiohttp.ClientConnectionError):
                await booting.call("GET", path, auth=False)
    fleet.faults.set(entry["host"], "offline")  # unplugged while rebooting: nothing answers
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.call("GET", "/api/v1/pairing/info", auth=False)
    fleet.faults.clear(entry["host"])
    assert (await client.call("GET", "/api/v1/pairing/info", auth=False))[0] == 200
    clock.advance(10)
    assert (await client.call("GET", "/api/v1/system", auth=False))[0] == 200


async def test_refresh_keeps_other_tokens_a_login_revokes_them(sim_fleet, proto, clock):
    fleet = await sim_fleet(proto=1, password=PW, token_ttl=600, clock=clock)
    client = proto(fleet.inventory[0])
    _, tokens = await client.call("POST", "/api/v1/auth/login", json={"password": PW})
    clock.advance(300)
    _, fresh = await client.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    for token in (tokens["access_token"], fresh["access_token"]):
        assert (await client.call("GET", "/api/v1/mining", token=token))[0] == 200
    clock.advance(300)  # the first one expires on its own schedule, the refreshed one lives on
    assert (await client.call("GET", "/api/v1/mining", token=tokens["access_token"]))[0] == 401
    assert (await client.call("GET", "/api/v1/mining", token=fresh["access_token"]))[0] == 200
    other = await client.login()
    assert (await client.call("GET", "/api/v1/mining", token=fresh["access_token"]))[0] == 401
    assert (await client.call("GET", "/api/v1/mining", token=other))[0] == 200
    status, _ = await client.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 401  # the login replaced the refresh token too


async def test_stratum_v2_pools_need_an_authority_key(sim_fleet, proto):
    fleet = await sim_fleet(proto=1, password=PW)
    client = proto(fleet.inventory[0])
    await client.login()

    def pool(url, **extra):
        return [{"url": url, "username": "acct.w1", "priority": 0, **extra}]

    status, err = await client.call(
        "POST", "/api/v1/pools", json=pool("stratum2+tcp://sv2.example")
    )
    assert status == 422 and "v2_authority_pubkey" in err["error"]["message"]
    for bad in ("not-base58-0OIl", SV2_KEY[:-1] + "3", "1111111111"):
        status, _ = await client.call(
            "POST",
            "/api/v1/pools",
            json=pool("stratum2+tcp://sv2.example", v2_authority_pubkey=bad),
        )
        assert status == 422, bad
    for url in ("stratum2+tcp://127.0.0.1:3336", "stratum2+tcp://localhost"):
        assert (await client.call("POST", "/api/v1/pools", json=pool(url)))[0] == 200, url
    body = pool("stratum2+tcp://sv2.example:3336", v2_authority_pubkey=SV2_KEY)
    assert (await client.call("POST", "/api/v1/pools", json=body))[0] == 200
    _, listed = await client.call("GET", "/api/v1/pools")
    assert listed["pools"][0]["v2_authority_pubkey"] == SV2_KEY
    assert listed["pools"][0]["protocol"] == "Stratum V2"
    assert (await client.call("PUT", "/api/v1/pools/0", json={"name": "sv2"}))[0] == 200  # kept
    test = {"url": "stratum2+tcp://sv2.example:3336"}
    assert (await client.call("POST", "/api/v1/pools/test-connection", json=test))[0] == 422
    test["v2_authority_pubkey"] = SV2_KEY
    assert (await client.call("POST", "/api/v1/pools/test-connection", json=test))[0] == 200
    for url in ("stratum+ssl://pool.example:3333", "tcp://pool.example:3333"):
        assert (await client.call("POST", "/api/v1/pools", json=pool(url)))[0] == 422, url


async def test_board_asic_temperatures_are_those_of_its_chips(sim_fleet, proto, clock):
    """Spec `HashboardStats`: `avg_asic_temp_c`/`max_asic_temp_c` describe the board's ASICs
    (its `asics[].temp_c`, the same chips `/telemetry?level=asic` lists), and a board's
    `hashrate_ghs` is the sum of its ASICs'."""
    fleet = await sim_fleet(proto=1, password=PW, clock=clock)
    client = proto(fleet.inventory[0])
    await client.login()
    _, telemetry = await client.call("GET", "/api/v1/telemetry?level=hashboard,asic")
    _, mining = await client.call("GET", "/api/v1/mining")
    board_avgs = []
    for board in telemetry["hashboards"]:
        _, body = await client.call("GET", f"/api/v1/hashboards/{board['serial_number']}")
        stats = body["hashboard-stats"]
        chips = [a["temp_c"] for a in stats["asics"]]
        assert stats["max_asic_temp_c"] == pytest.approx(max(chips), abs=0.01)
        assert stats["max_asic_temp_c"] > stats["avg_asic_temp_c"]
        assert stats["avg_asic_temp_c"] == pytest.approx(sum(chips) / len(chips), abs=0.01)
        assert stats["hashrate_ghs"] == pytest.approx(
            sum(a["hashrate_ghs"] for a in stats["asics"]), rel=0.001
        )
        listed = board["asics"]["temperature"]["values"]
        assert max(listed) == pytest.approx(stats["max_asic_temp_c"], abs=0.06)
        board_avgs.append(stats["avg_asic_temp_c"])
    average = mining["mining-status"]["average_asic_temp_c"]
    assert average == pytest.approx(sum(board_avgs) / len(board_avgs), abs=0.01)
