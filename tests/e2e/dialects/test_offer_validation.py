"""Browser offers the web leg cannot take are refused before anything is dialled (issue 32 item 9).

Each offer below is a real Chromium offer with one change that the offer fuzzer
(tests/media/webrtc/test_offer_fuzz.py) found to pass the gateway's checks until issue 32 and then
fail in aiortc once the PBX had answered, most with a traceback. Through a whole gateway, by the HTTP
offer API, the WebSocket `call`, JSON-RPC `offer` and WHIP: 400 (an `error` reply) naming `sdp` and the
SDP line; by SIP over WebSocket (an authenticated INVITE, as JsSIP sends it): 488 (or 400) naming the
line in the status line and in a Warning 399. No INVITE reaches the PBX's UDP socket, no ERROR and no
traceback in the log. The same socket does receive the INVITE of the unchanged offer (the control: the
check does not refuse what works).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest

from peers.ports import free_port
from peers.web_user import WebUser, WebUserError
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
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
            body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
            auth = {"Authorization": aiohttp.encode_basic_auth("alice", ALICE_SECRET)}
            async with http.post(f"{gateway.http_url}/webrtc/offer", json=body, headers=auth) as response:
                status, error = response.status, await response.json()
            assert (status, error["field"]) == (400, "sdp"), error
            assert line in error["error"], error

            with pytest.raises(WebUserError) as refused:
                await alice.call("2000", offer)
            assert "'field': 'sdp'" in str(refused.value) and line in str(refused.value)

            rpc = f"{gateway.http_url.replace('http', 'ws', 1)}/jsonrpc?api_key={API_KEY}"
            async with http.ws_connect(rpc) as ws:
                request = {"sdp": offer, "type": "offer"}
                await ws.send_json({"jsonrpc": "2.0", "method": "offer", "params": request, "id": 1})
                reply = await ws.receive_json(timeout=15)
            assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == "sdp", reply
            assert line in reply["error"]["message"], reply

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
