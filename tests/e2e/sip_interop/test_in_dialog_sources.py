"""A stranger's re-INVITE does not move a call's media; the far end's own does (issue 32 item 10).

A whole gateway on 127.0.0.1 trusting only 127.0.0.1; the PBX is one of our UAs on 127.0.0.2 whose RTP
socket is 127.0.0.2:A; a browser stand-in (aiortc, a 1 kHz tone) calls it through the gateway. A
stranger on 127.0.0.3 who knows the dialog (Call-ID, tags, next CSeq) sends a re-INVITE moving the
audio to 127.0.0.3:S, then a BYE: both get 403, the gateway's RTP keeps going to 127.0.0.2:A and none
reaches 127.0.0.3:S, the call stays up. The PBX's own re-INVITE to 127.0.0.2:B moves it there.
"""

from __future__ import annotations

import asyncio
import copy
import socket

from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua import Listen, UserAgent
from gateway.sip.useragent.ua_events import Confirmed
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from sipcore.location.routing import Target
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.sip.ua_helpers import expect, running_ua


def _sdp(host: str, port: int, version: int) -> str:
    return (
        f"v=0\r\no=pbx 1 {version} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets += 1


async def _rtp_socket(host: str) -> tuple[asyncio.DatagramTransport, Counter]:
    port = free_port(socket.SOCK_DGRAM)
    transport, counter = await asyncio.get_running_loop().create_datagram_endpoint(
        Counter, local_addr=(host, port)
    )
    return transport, counter


async def _stranger(
    stranger: UserAgent, call: IncomingCall, gateway: UserAgent, method: str, body: str
) -> int:
    assert call.dialog is not None
    request = copy.deepcopy(call.dialog).create_request(
        method, body=body.encode(), content_type="application/sdp" if body else None
    )
    target = Target("UDP", gateway.endpoint.host, gateway.endpoint.port or 5060)
    return (await (await stranger.layer.request(request, target)).final_response()).status


async def test_a_strangers_reinvite_leaves_the_media_where_it_is() -> None:
    sockets = [await _rtp_socket(h) for h in ("127.0.0.2", "127.0.0.3", "127.0.0.2")]
    (_, at_a), (_, at_s), (_, at_b) = sockets
    port_of = [t.get_extra_info("sockname")[1] for t, _ in sockets]
    sip_port = free_port(socket.SOCK_DGRAM)
    peer = WebPeer(freq=1000)
    try:
        async with (
            running_ua(listen=(Listen("udp", "127.0.0.2", sip_port),)) as pbx,
            running_ua(listen=(Listen("udp", "127.0.0.3"),)) as stranger,
            running_gateway(gateway_config(f"127.0.0.2:{sip_port}")) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            call_id = await alice.call("2000", await peer.offer())
            incoming = await pbx.next_incoming(15)
            incoming.answer(_sdp("127.0.0.2", port_of[0], 1))
            await expect(incoming, Confirmed, 15)
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            await wait_until(lambda: at_a.packets > 20, timeout=20)

            ua = gateway.sip
            assert ua is not None
            moved = _sdp("127.0.0.3", port_of[1], 2)
            assert await _stranger(stranger, incoming, ua, "INVITE", moved) == 403
            assert await _stranger(stranger, incoming, ua, "BYE", "") == 403
            before = at_a.packets
            await wait_until(lambda: at_a.packets > before + 50, timeout=20)  # ~1 s more at 127.0.0.2:A
            assert at_s.packets == 0

            result = asyncio.create_task(incoming.reinvite(_sdp("127.0.0.2", port_of[2], 2)))
            assert (await result).ok
            await wait_until(lambda: at_b.packets > 20, timeout=20)  # the PBX's own re-INVITE moved it
            assert at_s.packets == 0
            await alice.request({"type": "hangup", "call_id": call_id})
    finally:
        await peer.close()
        for transport, _ in sockets:
            transport.close()
