"""The CGMiner RPC parser against every quirk real firmware emits, and the client's
multi-command fallback against a minimal firmware stand-in."""

from __future__ import annotations

import asyncio
import json

import pytest

from miners.cgminer import CgminerClient, parse_reply, repair, rpc, status_error
from miners.errors import AuthFailed, BadResponse, Rejected, Unreachable, Unsupported

OK = '"STATUS":[{"STATUS":"S","When":1,"Code":11,"Msg":"Summary","Description":"bmminer"}]'


def test_well_formed_reply_with_trailing_nul():
    raw = ("{" + OK + ',"SUMMARY":[{"GHS 5s":"140,123.5"}],"id":1}\x00').encode()
    assert parse_reply(raw)["SUMMARY"] == [{"GHS 5s": "140,123.5"}]


def test_missing_comma_between_objects_in_stats():
    raw = (
        b'{"STATUS":[{"STATUS":"S"}],"STATS":[{"BMMiner":"1.0"}{"STATS":0,"fan1":5400}],"id":1}\x00'
    )
    assert parse_reply(raw)["STATS"] == [{"BMMiner": "1.0"}, {"STATS": 0, "fan1": 5400}]


def test_missing_comma_with_whitespace_between_objects():
    raw = b'{"STATS":[{"a":1}\n  {"b":2}]}'
    assert parse_reply(raw)["STATS"] == [{"a": 1}, {"b": 2}]


def test_leading_comma_in_array():
    assert parse_reply(b'{"POOLS":[,{"POOL":0},{"POOL":1}]}')["POOLS"] == [{"POOL": 0}, {"POOL": 1}]


def test_trailing_commas():
    assert parse_reply(b'{"a":{"b":1,},"c":[1,2,],}') == {"a": {"b": 1}, "c": [1, 2]}


def test_raw_newlines_and_tabs_inside_strings():
    raw = b'{"Msg":"line one\nline\ttwo","x":1}'
    assert parse_reply(raw)["Msg"] == "line one\nline\ttwo"


@pytest.mark.parametrize("token", ["inf", "-inf", "nan", "NaN", "Infinity", "-nan"])
def test_non_finite_numbers_become_null(token):
    raw = f'{{"GHS av":{token},"list":[{token},1],"Msg":"keep inf in strings"}}'.encode()
    value = parse_reply(raw)
    assert value["GHS av"] is None and value["list"] == [None, 1]
    assert value["Msg"] == "keep inf in strings"


def test_truncated_reply_keeps_complete_values():
    raw = b'{"STATUS":[{"STATUS":"S"}],"POOLS":[{"POOL":0,"URL":"a"},{"POOL":1,"URL":"stra'
    value = parse_reply(raw)
    assert value["STATUS"] == [{"STATUS": "S"}]
    assert value["POOLS"][0] == {"POOL": 0, "URL": "a"}


def test_truncated_inside_number():
    assert parse_reply(b'{"a":1,"b":[1,2,3') == {"a": 1, "b": [1, 2]}


def test_concatenated_top_level_objects_are_merged():
    assert parse_reply(b'{"a":1,"b":1}{"b":2,"c":3}\x00') == {"a": 1, "b": 1, "c": 3}


def test_separators_inside_strings_are_untouched():
    assert parse_reply(b'{"a":"x,}{y[,z","b":2,}') == {"a": "x,}{y[,z", "b": 2}


def test_escaped_quotes_inside_strings():
    assert parse_reply(b'{"a":"say \\"hi\\"",}') == {"a": 'say "hi"'}


def test_combined_quirks_like_old_bmminer():
    raw = (
        b'{"STATUS":[{"STATUS":"S"}],"STATS":[{"BMMiner":"2.0"}{"temp2_1":nan,"fan1":5000,}],'
        b'"POOLS":[,{"URL":"stratum+tcp://p:3333"}],"id":1}\x00\x00\n'
    )
    value = parse_reply(raw)
    assert value["STATS"][1] == {"temp2_1": None, "fan1": 5000}
    assert value["POOLS"] == [{"URL": "stratum+tcp://p:3333"}]


@pytest.mark.parametrize("raw", [b"", b"\x00", b"garbage \xff\xfe", b"[1,2]", b"<html>"])
def test_garbage_is_bad_response(raw):
    with pytest.raises(BadResponse):
        parse_reply(raw)


def test_repair_is_identity_on_valid_json():
    text = '{"a":[1,{"b":"c"}],"d":null}'
    assert json.loads(repair(text)) == json.loads(text)


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ("Invalid command", Unsupported),
        ("Access denied to 'restart' command", AuthFailed),
        ("Missing parameter", Rejected),
    ],
)
def test_error_envelopes_map_to_typed_errors(msg, error):
    reply = {"STATUS": [{"STATUS": "E", "Code": 14, "Msg": msg}]}
    found = status_error(reply, "x")
    assert isinstance(found, error)
    assert msg in found.message and found.code == "14"


def test_flat_status_envelope_and_success():
    assert isinstance(status_error({"STATUS": "E", "Msg": "Invalid command"}, "x"), Unsupported)
    assert status_error({"STATUS": [{"STATUS": "S"}]}, "x") is None
    assert status_error({"STATUS": [{"STATUS": "I"}]}, "x") is None


def test_no_pools_is_an_empty_list_not_an_error():
    assert (
        status_error({"STATUS": [{"STATUS": "E", "Code": 8, "Msg": "No pools"}]}, "pools") is None
    )


class FakeFirmware:
    """Answers like bmminer: one reply per connection, NUL-terminated, then close. With
    `multi=False` it rejects `a+b` commands the way old firmware does."""

    def __init__(self, multi: bool) -> None:
        self.multi = multi
        self.requests: list[dict] = []

    def reply_for(self, command: str) -> dict:
        if "+" in command:
            if not self.multi:
                return {"STATUS": [{"STATUS": "E", "Code": 14, "Msg": "Invalid command"}], "id": 1}
            return {c: [self.reply_for(c)] for c in command.split("+")} | {"id": 1}
        return {"STATUS": [{"STATUS": "S", "Msg": command}], command.upper(): [{"n": 1}], "id": 1}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads(await reader.read(4096))
        self.requests.append(request)
        writer.write(json.dumps(self.reply_for(request["command"])).encode() + b"\x00")
        await writer.drain()
        writer.close()


@pytest.fixture
async def firmware(request):
    fake = FakeFirmware(multi=request.param)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("firmware", [True], indirect=True)
async def test_multi_command_uses_one_connection(firmware):
    client = CgminerClient("127.0.0.1", firmware.port)
    replies = await client.commands("summary", "pools")
    assert replies["summary"]["SUMMARY"] == [{"n": 1}] and replies["pools"]["POOLS"] == [{"n": 1}]
    assert [r["command"] for r in firmware.requests] == ["summary+pools"]
    assert client.multi is True


@pytest.mark.parametrize("firmware", [False], indirect=True)
async def test_multi_command_falls_back_once_then_remembers(firmware):
    client = CgminerClient("127.0.0.1", firmware.port)
    replies = await client.commands("summary", "pools")
    assert replies["pools"]["POOLS"] == [{"n": 1}]
    await client.commands("summary", "pools")
    commands = [r["command"] for r in firmware.requests]
    assert commands[0] == "summary+pools" and commands.count("summary+pools") == 1
    assert sorted(commands[1:]) == ["pools", "pools", "summary", "summary"]


@pytest.mark.parametrize("firmware", [True], indirect=True)
async def test_parameter_is_sent(firmware):
    await rpc("127.0.0.1", firmware.port, "pools", "0")
    assert firmware.requests == [{"command": "pools", "parameter": "0"}]


async def test_refused_port_is_unreachable():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(Unreachable) as caught:
        await rpc("127.0.0.1", port, "version")
    assert caught.value.code == "ECONNREFUSED"


def test_rpc_client_runs_on_uvloop():
    """uvloop's transports aren't asyncio.Transport subclasses; the client must not care."""
    import uvloop

    async def main() -> dict:
        fake = FakeFirmware(multi=True)
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.wait_for(
                CgminerClient("127.0.0.1", port).commands("summary", "pools"), 5
            )
        finally:
            server.close()
            await server.wait_closed()

    assert uvloop.run(main())["summary"]["SUMMARY"] == [{"n": 1}]
