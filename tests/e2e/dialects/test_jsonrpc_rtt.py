"""Real-time text through JSON-RPC 2.0 at ``/jsonrpc`` (issue 68 item 1): an aiortc client opens a data
channel with label and subprotocol ``t140`` (RFC 8865 §4.1, DCEP) and asks for it in the SDP of its
``offer`` (``a=dcmap:1 label="t140";subprotocol="t140"``, RFC 8865 §5.1); the gateway's INVITE offers
RFC 4103 text, sipp's ``uas_rtt`` answers it on the port of a T.140 RED peer
(tests/e2e/softphone/test_softphone_rtt.py), and text goes both ways: the phone's RED packets (one lost,
recovered from the next's redundancy) as text on the client's channel, the client's text as RED T.140
packets to the phone, at least 300 ms apart with two generations. The other way round, sipp's
``uac_rtt`` calls the client's announced peer id offering m=text: the gateway's ``offer`` notification
opens the T.140 channel, and text goes both ways again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiortc import RTCDataChannel

from peers.binaries import require_binary
from peers.ports import free_range
from peers.sipp import Sipp
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer_rtt import ask_t140
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.softphone.test_softphone_rtt import (
    T140Peer,
    channel_text_both_ways,
    gateway_text_port,
    text_phone_answers,
)

API_KEY = "e2e-jsonrpc-rtt-key-0123456789"


async def test_a_jsonrpc_client_types_with_a_text_phone(tmp_path: Path) -> None:
    peer = WebPeer(freq=1000)
    channel = peer.pc.createDataChannel("t140", protocol="t140")
    texts: list[str] = []
    channel.on("message", lambda data: texts.append(data) if isinstance(data, str) else None)
    key = {"api_keys": [{"key": API_KEY, "default_dial": "2000"}]}
    try:
        async with (
            text_phone_answers(tmp_path, alice_extra=key) as (config, pbx, phone, transport),
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        ):
            client = RpcClient(ws)
            offer = ask_t140(await peer.offer())
            reply = await client.request("offer", {"sdp": offer, "type": "offer"})
            assert reply["result"]["answer"]["type"] == "answer", reply
            call_id = reply["result"]["call_id"]
            await peer.accept(reply["result"]["answer"]["sdp"])
            await client.notification("progress", call_id=call_id, event="answered")
            await wait_until(lambda: channel.readyState == "open" and gateway_text_port(pbx, phone.port))
            port = gateway_text_port(pbx, phone.port)
            assert port is not None

            await channel_text_both_ways(channel, texts, phone, transport, port, "RPC")

            reply = await client.request("disconnect", {"call_id": call_id, "reason": "done"})
            assert reply["result"]["status"] == "disconnected", reply
            result = await pbx.wait(timeout=15)
            assert result.ok, result
    finally:
        await peer.close()


async def test_a_text_phone_calls_a_jsonrpc_peer(tmp_path: Path) -> None:
    require_binary("sipp")
    loop = asyncio.get_running_loop()
    transport, phone = await loop.create_datagram_endpoint(T140Peer, local_addr=("127.0.0.1", 0))
    peer = WebPeer(freq=1000)
    channels: list[RTCDataChannel] = []
    texts: list[str] = []

    def offered(channel: RTCDataChannel) -> None:
        if channel.protocol == "t140":
            channels.append(channel)
            channel.on("message", lambda data: texts.append(data) if isinstance(data, str) else None)

    peer.pc.on("datachannel", offered)
    config = gateway_config(
        None, alice_extra={"api_keys": [{"key": API_KEY}]}, media={"rtp_ports": {"start": free_range()}}
    )
    try:
        async with (
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        ):
            client = RpcClient(ws)
            capabilities = {"audio": True, "incoming_calls": True}
            reply = await client.request("announce", {"peer_id": "alice-rtt", "capabilities": capabilities})
            assert reply["result"]["incoming_calls"] is True, reply
            host, sip_port = gateway.sip_address
            sipp = Sipp(tmp_path, "uac_rtt", f"{host}:{sip_port}", service="1001", duration_ms=9000,
                        rtp_echo=True, extra_args=["-set", "tport", str(phone.port)], timeout=60)  # fmt: skip
            try:
                await sipp.start()
                offer = await client.notification("offer")
                assert "webrtc-datachannel" in offer["sdp"]["sdp"], offer
                answer = await peer.answer(offer["sdp"]["sdp"])
                reply = await client.request(
                    "answer", {"call_id": offer["call_id"], "sdp": answer, "type": "answer"}
                )
                assert reply["result"]["status"] == "answered", reply
                await wait_until(lambda: bool(channels) and channels[0].readyState == "open", timeout=10)
                await wait_until(lambda: gateway_text_port(sipp, phone.port) is not None)
                port = gateway_text_port(sipp, phone.port)
                assert port is not None
                await channel_text_both_ways(channels[0], texts, phone, transport, port, "RPC")
                ended = await client.notification("disconnect", call_id=offer["call_id"], timeout=20)
                assert ended["reason"] == "remote_hangup", ended
                result = await sipp.wait(timeout=15)
            finally:
                await sipp.stop()
        assert result.ok, result
    finally:
        await peer.close()
        transport.close()
