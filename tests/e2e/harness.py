"""End-to-end helpers: a whole gateway in this process (the web user and browser stand-in are in peers/).

async with running_gateway(gateway_config(pbx=phone.address)) as gateway:
    async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
        peer = WebPeer(freq=1000)
        call_id = await alice.call("2000", await peer.offer())
        connected = await alice.wait_for("connected", call_id=call_id)
        await peer.accept(connected["sdp"])

"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.app import Gateway
from gateway.config import Config
from gateway.config.loader import config_from_mapping
from peers.demo import ALICE_HASH, ALICE_SECRET
from peers.ports import free_port, free_range
from peers.scratch import scratch_dir

__all__ = ["ALICE_SECRET", "BOB_SECRET", "gateway_config", "running_gateway", "wait_until", "web_media_moved"]

BOB_SECRET = "bob-demo"
BOB_HASH = "scrypt$16384$8$1$HwafWmrvldoS4lVbF1Oy5w==$LopM4K2fyTJmyfFUAG6Pe9UwsXcXGKEFM1ap1LuN+ds="


def gateway_config(pbx: str | None, *, register: bool = False, alice_auth: tuple[str, str] | None = None,
                   domain: str = "127.0.0.1", pbx_transport: str = "udp", alice_outbound: tuple[str, ...] = (".",),
                   alice_extra: dict[str, Any] | None = None, bob_auth: tuple[str, str] | None = None,
                   **sections: Any) -> Config:  # fmt: skip
    """A gateway on loopback with free ports; users alice (1001) and bob (1002) as in gateway.yaml.
    `alice_outbound`: alice's allow_outbound (dial patterns or exact SIP URIs); `alice_extra`: more keys
    of her users[] entry (default_dial, api_keys...); `bob_auth`: bob's pbx_auth, as `alice_auth`."""
    alice: dict[str, Any] = {
        "id": "alice",
        "display_name": "Alice",
        "sip": "1001",
        "allow_outbound": list(alice_outbound),
        "web_secret_hash": ALICE_HASH,
    }
    alice.update(alice_extra or {})
    if alice_auth is not None:
        alice["pbx_auth"] = {"username": alice_auth[0], "password": alice_auth[1]}
    mapping: dict[str, Any] = {
        "sip": {
            "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
            "trusted_sources": ["127.0.0.1/32"],
        },
        "media": {"rtp_ports": {"start": free_range(), "end": 0}},
        "pbx": (
            {"address": pbx, "register": register, "domain": domain, "transport": pbx_transport}
            if pbx
            else {"domain": domain}
        ),
        "http": {"host": "127.0.0.1", "port": free_port()},
        "users": [
            alice,
            {
                "id": "bob",
                "display_name": "Bob",
                "sip": "1002",
                "allow_outbound": ["."],
                "web_secret_hash": BOB_HASH,
                **({"pbx_auth": {"username": bob_auth[0], "password": bob_auth[1]}} if bob_auth else {}),
            },
        ],
        # the session key and revoked tokens: a directory of this config's own, never ./state
        "state_dir": str(scratch_dir("gateway-state-")),
        **sections,
    }
    # a media section given without rtp_ports gets the free range too
    rtp = mapping["media"].setdefault("rtp_ports", {"start": free_range()})
    rtp["end"] = rtp["start"] + 199
    return config_from_mapping(mapping, {})


@contextlib.asynccontextmanager
async def running_gateway(config: Config) -> AsyncIterator[Gateway]:
    gateway = Gateway(config)
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.close()


async def wait_until(predicate: Any, timeout: float = 10, interval: float = 0.05) -> None:
    """Poll `predicate()` until it is true (AssertionError after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def web_media_moved(
    gateway: Gateway, read: Callable[[], Awaitable[str | None]], before: str, timeout: float = 20
) -> str:
    """After an ICE restart: wait until the browser's selected pair (``read()``: its local candidate
    "address:port", None while none works) is another than ``before`` and the gateway's one call sends
    its media there (the browser may try more than one pair of the new session before it settles)."""
    runtime = next(iter(gateway.driver.runtimes))
    bridge = runtime.bridge
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pair: str | None = None
    while loop.time() < deadline:
        pair = await read()
        address = bridge.web_media_address() if bridge is not None else None  # type: ignore[attr-defined]
        if pair not in (None, before) and address is not None and pair.rsplit(":", 1)[1] == str(address[1]):
            return pair
        await asyncio.sleep(0.2)
    raise AssertionError(f"no move to a new ICE session within {timeout} s: {before} -> {pair}")


def call_ports(gateway: Gateway) -> frozenset[int]:
    """The RTP ports calls hold: those of the gateway's allocator less the pairs its ICE pool keeps bound
    for the next calls (gateway/media/webrtc/ice_pool.py)."""
    return frozenset(gateway.ports.held) - gateway.ice_pool.pooled
