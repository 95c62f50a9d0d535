"""The client's address behind trusted reverse proxies (gateway/signaling/proxies.py): the rule, and a
running gateway behind a "proxy" at 127.0.0.1 whose clients are told apart by X-Forwarded-For, so that one
client guessing passwords slows that client alone; from a peer that is not a trusted proxy the header
changes nothing (a guesser cannot escape the throttle by writing a new address in it each time)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp

from gateway.app import Gateway
from gateway.signaling.proxies import client_address
from peers.ports import free_port
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

PROXIES = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.9.0.0/16"))


def test_the_client_is_the_rightmost_hop_that_is_not_a_proxy() -> None:
    assert client_address("127.0.0.1", ["203.0.113.7"], PROXIES) == "203.0.113.7"
    # the client wrote the left entries itself: only what our proxies appended counts
    assert client_address("127.0.0.1", ["1.2.3.4, 203.0.113.7"], PROXIES) == "203.0.113.7"
    assert client_address("127.0.0.1", ["1.2.3.4, 203.0.113.7, 10.9.1.1"], PROXIES) == "203.0.113.7"
    assert client_address("127.0.0.1", ["1.2.3.4", "203.0.113.7"], PROXIES) == "203.0.113.7"  # two headers
    assert client_address("127.0.0.1", ["[2001:db8::5]:4711"], PROXIES) == "2001:db8::5"
    assert client_address("127.0.0.1", ["198.51.100.2:5060"], PROXIES) == "198.51.100.2"
    assert client_address("127.0.0.1", ["10.9.3.3"], PROXIES) == "10.9.3.3"  # only proxies: the leftmost


def test_the_header_is_ignored_unless_a_trusted_proxy_sent_it() -> None:
    assert client_address("127.0.0.2", ["203.0.113.7"], PROXIES) == "127.0.0.2"
    assert client_address("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"  # none configured
    assert client_address("127.0.0.1", [], PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", ["not-an-address"], PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", ["203.0.113.7, junk"], PROXIES) == "127.0.0.1"


async def login(gateway: Gateway, local: str, forwarded_for: str | None, secret: str) -> dict[str, Any]:
    url = gateway.http_url.replace("http://", "ws://") + "/ws"
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    connector = aiohttp.TCPConnector(local_addr=(local, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.ws_connect(url, headers=headers) as ws,
    ):
        await ws.send_json({"type": "login", "id": 1, "user": "alice", "secret": secret})
        reply: dict[str, Any] = await ws.receive_json(timeout=60)
        return reply


async def test_behind_a_proxy_one_guessing_client_slows_itself_alone() -> None:
    http = {"host": "127.0.0.1", "port": free_port(), "trusted_proxies": ["127.0.0.1/32"]}
    config = gateway_config(None, http=http, sip={"listen": [
        {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}]})  # fmt: skip
    async with running_gateway(config) as gateway:
        codes = [(await login(gateway, "127.0.0.1", "203.0.113.66", f"guess{n}"))["type"] for n in range(14)]
        assert codes.count("registered") == 0
        refused = await login(gateway, "127.0.0.1", "203.0.113.66", ALICE_SECRET)
        assert refused.get("code") == "rate_limited", refused  # the guessing client itself waits
        # another client behind the same proxy: its own address, never guessing (without the header
        # rule both were 127.0.0.1, the guessing address, and this login waited too)
        welcome = await login(gateway, "127.0.0.1", "198.51.100.8", ALICE_SECRET)
        assert welcome["type"] == "registered", welcome

        # 127.0.0.2 is no proxy of ours: its header is ignored, a new "address" per try escapes nothing
        for n in range(14):
            await login(gateway, "127.0.0.2", f"192.0.2.{n + 1}", f"guess{n}")
        refused = await login(gateway, "127.0.0.2", "192.0.2.200", ALICE_SECRET)
        assert refused.get("code") == "rate_limited", refused
