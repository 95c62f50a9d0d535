"""Browser offers the web leg cannot take are refused before anything is dialled (issue 32 item 9).

Each offer below is a real Chromium offer with one change that the offer fuzzer
(tests/media/webrtc/test_offer_fuzz.py) found to pass the gateway's checks until issue 32 and then
fail in aiortc once the PBX had answered, most with a traceback. Through a whole gateway, by the HTTP
offer API, the WebSocket `call`, JSON-RPC `offer` and WHIP: 400 (an `error` reply) naming `sdp` and the
SDP line; by SIP over WebSocket (an authenticated INVITE, as JsSIP sends it): 488 (or 400) naming the
line in the status line and in a Warning 399. No INVITE reaches the PBX's UDP socket, no ERROR and no
traceback in the log. The same socket does receive the INVITE of the unchanged offer (the control: the
check does not refuse what works).

Offers that are well formed but unusable (no audio m-line, no codec of codecs.webrtc, a plain RTP/AVP
profile) are the browser's fault too (issue 33): 400 naming sdp by the HTTP offer API, /ws and JSON-RPC
(invalid params), never 502 `incompatible_media`, which stays the reason for a far end's 488 (sipp).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path

import aiohttp
import pytest

from peers.binaries import require_binary
from peers.ports import free_port
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import SipCall, header_value, realm_of, sip_socket, websocket_config
from tests.sdp.samples import text

GOOD = text("chromium-offer-audio")
# (what is changed, replaced by, the SDP line the refusal must name); found by the fuzzer
BAD = [
    ("a=setup:actpass\r\n", "a=setup:holdconn\r\n", "a=setup"),  # aiortc: KeyError 'holdconn'
    ("a=setup:actpass\r\n", "", "a=setup"),  # aiortc: AttributeError ('NoneType' ... 'role')
    ("a=rtpmap:111 opus/48000/2\r\n", "a=rtpmap:111 99999999999999999999\r\n", "a=rtpmap"),  # IndexError
    ("a=ssrc:1045697302 cname:3EjKm2oIjmbLSacl\r\n", "a=ssrc:1045697302 256\r\n", "a=ssrc"),  # ValueError
    ("a=rtcp-mux\r\n", "", "a=rtcp-mux"),  # aiortc: "RTCP mux is not enabled"
    ("a=fmtp:63 111/111\r\n", "a=fmtp:x 111/111\r\n", "a=fmtp"),  # aiortc: int('x')
    # issue 67 item 19: aiortc "Media sections in answer do not match offer" after the phone answered
    ("a=mid:0\r\n", "a=mid:\r\n", "a=mid"),
]


API_KEY = "e2e-offer-validation-key-0123456789"
KEYS = {"api_keys": [{"key": API_KEY, "default_dial": "2000"}]}


class Pbx(asyncio.DatagramProtocol):
    """The PBX's UDP socket: the INVITEs that reach it by Call-ID (nothing is answered: retransmitted)."""

    def __init__(self) -> None:
        self.invites: dict[str, str] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"INVITE "):
            message = data.decode("utf-8", "replace")
            call_id = next(h for h in message.split("\r\n") if h.lower().startswith(("call-id:", "i:")))
            self.invites[call_id.split(":", 1)[1].strip()] = message


async def refused_as_bad_sdp(
    http: aiohttp.ClientSession, base: str, alice: WebUser, offer: str, why: str
) -> None:
    """``offer`` refused naming sdp and ``why``: 400 `bad_request` by the HTTP offer API, an `error` on
    /ws, the invalid-params error (-32602, http_status 400) by JSON-RPC."""
    body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
    auth = {"Authorization": aiohttp.encode_basic_auth("alice", ALICE_SECRET)}
    async with http.post(f"{base}/webrtc/offer", json=body, headers=auth) as response:
        status, error = response.status, await response.json()
    assert (status, error["field"], error["reason"]) == (400, "sdp", "bad_request"), error
    assert why in error["error"], error

    with pytest.raises(WebUserError) as refused:
        await alice.call("2000", offer)
    assert "'field': 'sdp'" in str(refused.value) and why in str(refused.value)

    async with http.ws_connect(f"{base.replace('http', 'ws', 1)}/jsonrpc?api_key={API_KEY}") as ws:
        request = {"sdp": offer, "type": "offer"}
        await ws.send_json({"jsonrpc": "2.0", "method": "offer", "params": request, "id": 1})
        reply = await ws.receive_json(timeout=15)
    error = reply["error"]
    assert error["code"] == -32602 and error["data"]["field"] == "sdp", reply
    assert error["data"]["http_status"] == 400 and why in error["message"], reply


@pytest.mark.parametrize(("old", "new", "line"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
async def test_bad_offer_refused_before_dialling(
    old: str, new: str, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert old in GOOD
    offer = GOOD.replace(old, new, 1)
    caplog.set_level(logging.INFO)
    port = free_port(socket.SOCK_DGRAM)
    transport, pbx = await asyncio.get_running_loop().create_datagram_endpoint(
        Pbx, local_addr=("127.0.0.1", port)
    )
    try:
        async with (
            running_gateway(websocket_config(f"127.0.0.1:{port}", sections={"alice_extra": KEYS})) as gateway,
            aiohttp.ClientSession() as http,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            await refused_as_bad_sdp(http, gateway.http_url, alice, offer, line)

            whip = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"}
            async with http.post(f"{gateway.http_url}/whip/2000", data=offer, headers=whip) as response:
                status, error = response.status, await response.json()
            assert (status, error["field"]) == (400, "sdp"), error
            assert line in error["error"], error

            async with sip_socket(gateway) as sip:  # SIP over WebSocket: alice's softphone library
                uri = f"sip:2000@{realm_of(gateway)}"
                call = SipCall(sip, uri, uri)
                final = await call.invite(offer, realm_of(gateway))
                await call.ack(final, uri, "")  # RFC 3261 §17.1.1.3: the ACK of a failure, in its transaction
            start, warning = final.split("\r\n", 1)[0], header_value(final, "Warning")
            assert start.startswith(("SIP/2.0 488 ", "SIP/2.0 400 ")) and line in start, final
            assert warning.startswith("399 ") and line in warning, final

            call_id = await alice.call("2000", GOOD)  # the control: this one is dialled
            await wait_until(lambda: len(pbx.invites) == 1, timeout=20)
            assert "m=audio" in next(iter(pbx.invites.values()))
            await alice.request({"type": "hangup", "call_id": call_id})
    finally:
        transport.close()
    assert len(pbx.invites) == 1, pbx.invites  # the good offer's only
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def _only_g729(offer: str) -> str:
    """The audio m-line offers G.729 alone (and its telephone-event): none of codecs.webrtc."""
    lines = offer.split("\r\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("m=audio"))
    lines[index] = " ".join(lines[index].split(" ")[:3]) + " 18"
    lines = [line for line in lines if not line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))]
    return "\r\n".join([*lines[: index + 1], "a=rtpmap:18 G729/8000", *lines[index + 1 :]])


# offers the gateway itself refuses (issue 33): 400 naming sdp in every dialect, never 502
# incompatible_media, which is a far end's 488 (test_a_far_ends_488_stays_incompatible_media)
UNUSABLE = [
    ("no-audio", GOOD.replace("m=audio", "m=video", 1), "no WebRTC audio stream"),
    ("no-usable-codec", _only_g729(GOOD), "offers none of"),
    ("plain-rtp-profile", GOOD.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP", 1), "no WebRTC audio stream"),
]


@pytest.mark.parametrize(("offer", "why"), [u[1:] for u in UNUSABLE], ids=[u[0] for u in UNUSABLE])
async def test_an_offer_the_gateway_cannot_use_is_400_naming_sdp(offer: str, why: str) -> None:
    port = free_port(socket.SOCK_DGRAM)
    transport, pbx = await asyncio.get_running_loop().create_datagram_endpoint(
        Pbx, local_addr=("127.0.0.1", port)
    )
    try:
        async with (
            running_gateway(gateway_config(f"127.0.0.1:{port}", alice_extra=KEYS)) as gateway,
            aiohttp.ClientSession() as http,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            await refused_as_bad_sdp(http, gateway.http_url, alice, offer, why)
    finally:
        transport.close()
    assert not pbx.invites, pbx.invites  # refused before anything was dialled


async def test_a_far_ends_488_stays_incompatible_media(tmp_path: Path) -> None:
    """The PBX (sipp) refuses the INVITE 488 after the offer was answered: the HTTP session fails with
    `incompatible_media` and SIP status 488, JSON-RPC sends `disconnect` with that reason; neither is a
    400 blaming the browser's SDP."""
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_not_acceptable", calls=2) as pbx:
        config = gateway_config(pbx.address, alice_extra=KEYS)  # no keepalives: sipp takes only INVITEs
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0))
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            body = {"sdp": {"type": "offer", "sdp": GOOD}, "metadata": {"dial": "2000"}}
            auth = {"Authorization": aiohttp.encode_basic_auth("alice", ALICE_SECRET)}
            async with http.post(f"{gateway.http_url}/webrtc/offer", json=body, headers=auth) as response:
                assert response.status == 200, await response.text()
                session = (await response.json())["session_id"]
            progress: dict[str, object] = {}

            async def failed() -> bool:
                url = f"{gateway.http_url}/webrtc/sessions/{session}"
                async with http.get(url, headers=auth) as reply:
                    progress.update(await reply.json())
                return progress["state"] == "failed"

            for _ in range(100):
                if await failed():
                    break
                await asyncio.sleep(0.1)
            assert (progress["reason"], progress["sip_status"]) == ("incompatible_media", 488), progress

            rpc = f"{gateway.http_url.replace('http', 'ws', 1)}/jsonrpc?api_key={API_KEY}"
            async with http.ws_connect(rpc) as ws:
                await ws.send_json({"jsonrpc": "2.0", "method": "offer", "params": {"sdp": GOOD}, "id": 1})
                assert "result" in await ws.receive_json(timeout=15)
                while (message := await ws.receive_json(timeout=15)).get("method") != "disconnect":
                    pass
            assert message["params"]["reason"] == "incompatible_media", message
            assert message["params"]["sip_status"] == 488, message
        result = await pbx.wait(timeout=10)
    assert result.ok, result
