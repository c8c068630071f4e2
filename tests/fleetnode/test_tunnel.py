"""The node's end of tunnels without a server: frames in, frames out (``fleetnode.tunnel``).
The node checks every target itself — only its miners, clean paths under the API prefix, no
loopback/link-local/multicast/unspecified unless its allowlist names them — and logs in with
the credentials sealed to it."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest

from fleetnode import protocol
from fleetnode.node import Node
from fleetnode.state import State
from fleetnode.tunnel import Allow, Refused, Tunnels, check_target
from miners import Registry, default_drivers
from tests.fleetnode.conftest import NODE_ID, assignment_for


def _node(state: State, inventory: list[dict[str, Any]]) -> Node:
    node = Node(state, registry=Registry(default_drivers(include_pyasic=False)))
    node.node_key = os.urandom(32)
    node.assign(assignment_for(inventory, node.node_key, node_id=NODE_ID))
    return node


def _request(path: str, miner_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": "tunnel_request",
        "id": uuid.uuid4().hex,
        "miner_id": miner_id,
        "method": "GET",
        "path": path,
        "query": "",
        "headers": [["accept", "application/json"], ["cookie", "sessionid=leak"]],
        "body": "",
        "more": False,
        **extra,
    }


async def _until_closed(sent: list[dict[str, Any]], tid: str) -> dict[str, Any]:
    for _ in range(400):
        found = [f for f in sent if f["type"] == "tunnel_close" and f["id"] == tid]
        if found:
            return found[0]
        await asyncio.sleep(0.025)
    raise AssertionError(f"no tunnel_close for {tid}: {sent}")


def test_allowlist_parsing_and_target_rule() -> None:
    allow = Allow.parse("127.0.0.0/8, 192.0.2.0/24#22")
    assert check_target("127.0.0.5", 80, allow) == "127.0.0.5"
    assert check_target("10.0.0.7", 80, Allow()) == "10.0.0.7"  # private: the node's LAN
    assert check_target("::ffff:127.0.0.1", 80, allow) == "127.0.0.1"
    for host in ("127.0.0.1", "169.254.169.254", "224.0.0.1", "0.0.0.0", "::1", "fe80::1"):
        with pytest.raises(Refused):
            check_target(host, 80, Allow())
    with pytest.raises(Refused):
        check_target("rig.example", 80, allow)  # names are not resolved here
    for bad in ("nonsense", "10.0.0.0/8#0", "10.0.0.0/8#http"):
        with pytest.raises(ValueError):
            Allow.parse(bad)


async def test_http_through_the_node_logs_in_and_filters(state: State, rigs: Any) -> None:
    node = _node(state, rigs.inventory)
    sent: list[dict[str, Any]] = []
    tunnels = Tunnels(node, sent.append, allow=Allow.parse("127.0.0.0/8"))
    try:
        frame = _request("/api/v1/system")
        tunnels.handle(frame)
        close = await _until_closed(sent, frame["id"])
        assert close["reason"] == "done", close
        response = next(f for f in sent if f["type"] == "tunnel_response")
        assert response["status"] == 200
        names = {name for name, _ in response["headers"]}
        assert not names & {"set-cookie", "www-authenticate", "transfer-encoding", "connection"}
        body = b"".join(protocol.tunnel_data_bytes(f) for f in sent if f["type"] == "tunnel_data")
        assert "system-info" in json.loads(body)
        assert sent[-2]["type"] == "tunnel_data" and sent[-2]["eof"] is True
        assert not tunnels.open and tunnels.finished == {"done": 1}
    finally:
        await tunnels.stop()


async def test_the_node_refuses_what_is_not_its_to_reach(state: State, rigs: Any) -> None:
    node = _node(state, rigs.inventory)
    sent: list[dict[str, Any]] = []
    strict = Tunnels(node, sent.append, allow=Allow())
    loose = Tunnels(node, sent.append, allow=Allow.parse("127.0.0.0/8"))
    cases = [
        (strict, _request("/api/v1/system")),  # its rig is on loopback: not allowlisted here
        (loose, _request("/api/v1/system", miner_id=99)),  # not assigned to this node
        (loose, _request("/api/v1/auth/login")),  # credential endpoints
        (loose, _request("/api/v1/pairing/auth-key")),
        (loose, _request("/api/v1/system/../auth/login")),
        (loose, _request("/api/v1/%2e%2e/auth")),
        (loose, _request("/api/v1//system")),
        (loose, _request("/other/api")),  # outside the driver's prefix
        (loose, _request("/api/v1/system", miner_id=2)),  # the Antminer's API is /cgi-bin
        (loose, _request("/cgi-bin/passwd.cgi", miner_id=2)),  # its credential CGI
        (loose, _request("/cgi-bin/reboot.cgi", miner_id=2)),  # changes the rig on GET
        (loose, _request("/cgi-bin/set_miner_conf.cgi", miner_id=2, method="POST")),  # pools
        (loose, _request("/api/v1/pools", method="POST")),  # pools: the audited action
        (loose, _request("/api/v1/system", method="TRACE")),
        (loose, {"type": "tunnel_open", "id": uuid.uuid4().hex, "host": "10.9.9.9", "port": 22}),
        (loose, {"type": "tunnel_open", "id": uuid.uuid4().hex, "host": "169.254.1.1", "port": 80}),
    ]
    try:
        for tunnels, frame in cases:
            tunnels.handle(frame)
            close = await _until_closed(sent, frame["id"])
            assert close["reason"] == "refused", (frame, close)
        assert not [f for f in sent if f["type"] == "tunnel_response"]
        # malformed frames are ignored, not fatal
        loose.handle({"type": "tunnel_request", "id": "../../etc"})
        loose.handle({"type": "tunnel_data", "id": uuid.uuid4().hex, "data": "AAAA"})
        assert not loose.open
    finally:
        await strict.stop()
        await loose.stop()


async def test_a_server_over_its_window_loses_the_tunnel(state: State, rigs: Any) -> None:
    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # never reads: the node's writes back up

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    node = _node(state, rigs.inventory)
    sent: list[dict[str, Any]] = []
    tunnels = Tunnels(node, sent.append, allow=Allow.parse(f"127.0.0.1/32#{port}"))
    try:
        tid = uuid.uuid4().hex
        tunnels.handle({"type": "tunnel_open", "id": tid, "host": "127.0.0.1", "port": port})
        for _ in range(200):
            if any(f["type"] == "tunnel_opened" for f in sent):
                break
            await asyncio.sleep(0.025)
        chunk = protocol.tunnel_data(tid, b"q" * protocol.TUNNEL_CHUNK)
        for _ in range(protocol.TUNNEL_WINDOW // protocol.TUNNEL_CHUNK + 1):
            tunnels.handle(chunk)
        close = await _until_closed(sent, tid)
        assert close["reason"] == "error" and "window" in close["error"]
    finally:
        await tunnels.stop()
        server.close()


def _body(sent: list[dict[str, Any]], tid: str) -> bytes:
    return b"".join(
        protocol.tunnel_data_bytes(f) for f in sent if f["type"] == "tunnel_data" and f["id"] == tid
    )


async def test_a_stock_antminer_through_the_node_answers_its_digest(
    state: State, rigs: Any
) -> None:
    """The node answers the rig's digest challenge with the credentials it holds, on the web
    port (the assignment stores the RPC port), and keeps the challenge for the next call."""
    node = _node(state, rigs.inventory)
    entry = next(e for e in rigs.inventory if e["kind"] == "antminer")
    rig = rigs.miner(entry["host"])
    sent: list[dict[str, Any]] = []
    tunnels = Tunnels(node, sent.append, allow=Allow.parse("127.0.0.0/8"))
    try:
        read = _request("/cgi-bin/get_system_info.cgi", miner_id=2)
        tunnels.handle(read)
        close = await _until_closed(sent, read["id"])
        assert close["reason"] == "done", close
        response = next(f for f in sent if f["type"] == "tunnel_response")
        assert response["status"] == 200
        assert "www-authenticate" not in {name for name, _ in response["headers"]}
        assert json.loads(_body(sent, read["id"]))["serinum"] == rig.serial

        blink = _request(
            "/cgi-bin/blink.cgi",
            miner_id=2,
            method="POST",
            headers=[["content-type", "application/json"]],
            body=protocol.b64encode(b'{"blink":"true"}'),
        )
        tunnels.handle(blink)
        close = await _until_closed(sent, blink["id"])
        assert close["reason"] == "done", close
        assert json.loads(_body(sent, blink["id"])) == {"code": "B000"}
        assert rig.locate_on(rigs.clock.now()), "the simulator is blinking"
    finally:
        await tunnels.stop()


async def test_a_wrong_antminer_password_is_auth_failed_not_a_loop(state: State, rigs: Any) -> None:
    inventory = [
        {**e, "password": "not-the-password"} if e["kind"] == "antminer" else e
        for e in rigs.inventory
    ]
    node = _node(state, inventory)
    sent: list[dict[str, Any]] = []
    tunnels = Tunnels(node, sent.append, allow=Allow.parse("127.0.0.0/8"))
    try:
        frame = _request("/cgi-bin/get_miner_conf.cgi", miner_id=2)
        tunnels.handle(frame)
        close = await _until_closed(sent, frame["id"])
        assert close["reason"] == "auth_failed", close
        assert not [f for f in sent if f["type"] == "tunnel_response"]
    finally:
        await tunnels.stop()


def test_the_web_port_of_a_stock_antminer() -> None:
    """One rule for server and node: the identity's web port, else the RPC port shifted."""
    from miners.apimap import http_port

    assert http_port("antminer", 4028, {"rpc": 4028, "web": 8080}) == 8080
    assert http_port("antminer", 24028, {}) == 20080  # a port-shifted rig (NAT, simulators)
    assert http_port("antminer", 80, None) == 80
    assert http_port("antminer", 4028, {"web": True}) == 80  # junk in the identity is ignored
    assert http_port("protoos", 8443, {"web": 80}) == 8443
