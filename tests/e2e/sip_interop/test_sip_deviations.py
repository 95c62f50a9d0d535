"""SIP deviations found with real-world cases (issue 33 item 6), on the wire: raw UDP and TCP sockets
send the exact messages to a whole gateway and read status code, reason phrase, Warning, Allow/Accept.

- OPTIONS to a user gets what an INVITE to her gets (RFC 3261 §11.2): 404 no such user, 480 not online,
  200 once she is; the gateway itself (no user part) 200; all of them 503 while draining.
- An RFC 2543 INVITE (RFC 4475 §3.4.1: no Contact...) gets a 400 whose reason phrase and Warning say why.
- OPTIONS' Accept lists what INFO and MESSAGE take; a 406 carries a Warning.
- A TCP REGISTER followed by a broken tail gets its 405 before the connection closes.
- An unreachable PBX: the browser's 503 names it whole, without the PBX's address.
- Opus with telephone-event/8000 only: the digit's timestamp and duration both count at 8 kHz; the
  SDP answer in the 200 has an o= line of the gateway's own, not the offer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
from collections.abc import AsyncIterator

from gateway.app import Gateway
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.websip.test_sip_websocket import SipCall, realm_of, sip_socket, websocket_config


class Udp(asyncio.DatagramProtocol):
    """A raw SIP endpoint on a UDP socket of its own: what comes back, in order."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self.packets: asyncio.Queue[bytes] = asyncio.Queue()  # the same, as bytes (RTP)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data.decode("utf-8", "replace"))
        self.packets.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_socket() -> AsyncIterator[tuple[asyncio.DatagramTransport, Udp]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Udp, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    try:
        yield transport, protocol
    finally:
        transport.close()


def request(
    method: str, uri: str, local: tuple[str, int], *, headers: str = "", body: str = "", call_id: str = ""
) -> str:
    host, port = local
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = call_id or secrets.token_hex(8)
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch}\r\n"
        f"From: <sip:pbx@{host}:{port}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <{uri}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:pbx@{host}:{port}>\r\n"
        f"Max-Forwards: 70\r\n{headers}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


async def final_response(protocol: Udp, timeout: float = 10) -> str:
    """The first final (>= 200) response received."""
    async with asyncio.timeout(timeout):
        while True:
            message = await protocol.received.get()
            if re.match(r"SIP/2\.0 [2-6]\d\d ", message):
                return message


def status_line(message: str) -> str:
    return message.split("\r\n", 1)[0]


def header(message: str, name: str) -> str | None:
    found = re.search(rf"^{name}:\s*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    return found.group(1).strip() if found else None


async def send(gateway: Gateway, message: str, transport: asyncio.DatagramTransport, protocol: Udp) -> str:
    transport.sendto(message.encode(), gateway.sip_address)
    return await final_response(protocol)


async def test_options_to_a_user_gets_what_an_invite_would() -> None:
    async with running_gateway(gateway_config(None)) as gateway, udp_socket() as (transport, protocol):
        host, port = gateway.sip_address
        local = transport.get_extra_info("sockname")[:2]

        async def ask(method: str, user: str | None) -> str:
            uri = f"sip:{user}@{host}:{port}" if user else f"sip:{host}:{port}"
            return await send(gateway, request(method, uri, local), transport, protocol)

        unknown = await ask("OPTIONS", "4242")
        assert status_line(unknown).startswith("SIP/2.0 404 "), unknown
        assert status_line(await ask("INVITE", "4242")).startswith("SIP/2.0 404 ")
        offline = await ask("OPTIONS", "1001")  # alice, no session open
        assert status_line(offline).startswith("SIP/2.0 480 "), offline
        assert status_line(await ask("INVITE", "1001")).startswith("SIP/2.0 480 ")
        itself = await ask("OPTIONS", None)  # a PBX's keep-alive to the gateway
        assert status_line(itself).startswith("SIP/2.0 200 "), itself
        assert "INVITE" in (header(itself, "Allow") or "") and header(itself, "Accept")
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET):
            online = await ask("OPTIONS", "1001")
            assert status_line(online).startswith("SIP/2.0 200 "), online
            gateway.drain()  # no new calls: an INVITE, so an OPTIONS, to anyone gets 503
            assert status_line(await ask("OPTIONS", "1001")).startswith("SIP/2.0 503 ")
            assert status_line(await ask("OPTIONS", None)).startswith("SIP/2.0 503 ")
            assert status_line(await ask("INVITE", "1001")).startswith("SIP/2.0 503 ")


async def test_options_to_a_rooms_number_opens_no_room() -> None:
    """An OPTIONS to one of `rooms.numbers` (a PBX's keep-alive, a probe) is answered 200, as an INVITE
    would be taken, and opens nothing: no conference, no gateway peer in the room, no session."""
    config = gateway_config(None, rooms={"numbers": {"3001": "lab"}})
    async with running_gateway(config) as gateway, udp_socket() as (transport, protocol):
        host, port = gateway.sip_address
        local = transport.get_extra_info("sockname")[:2]
        answer = await send(
            gateway, request("OPTIONS", f"sip:3001@{host}:{port}", local), transport, protocol
        )
        assert status_line(answer).startswith("SIP/2.0 200 "), answer
        await asyncio.sleep(0.2)
        assert not gateway.room_media.present("lab") and not gateway.room_media._conferences
        assert not gateway.driver._sessions


# RFC 4475 §3.4.1 (inv2543): an RFC 2543 INVITE, no branch, no From tag, no Max-Forwards, no Contact,
# no Content-Length (the datagram's end ends the body)
INV2543_SDP = (
    "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


async def test_an_rfc_2543_invite_gets_a_400_that_says_why() -> None:
    async with running_gateway(gateway_config(None)) as gateway, udp_socket() as (transport, protocol):
        host, port = gateway.sip_address
        here, there = transport.get_extra_info("sockname")[:2]
        invite = (
            f"INVITE sip:1001@{host}:{port} SIP/2.0\r\nTo: sip:1001@{host}:{port}\r\n"
            f"From: sip:caller@{here}:{there}\r\nCall-ID: 2543-{secrets.token_hex(4)}@{here}\r\n"
            f"CSeq: 1 INVITE\r\nVia: SIP/2.0/UDP {here}:{there}\r\nContent-Type: application/sdp\r\n\r\n"
            + INV2543_SDP
        )
        response = await send(gateway, invite, transport, protocol)
    line = status_line(response)
    assert line.startswith("SIP/2.0 400 Bad Request: ") and "Contact" in line, response
    warning = header(response, "Warning") or ""
    assert warning.startswith('399 sip-webrtc-gateway "') and "Contact" in warning, response


async def test_options_accept_lists_what_info_and_message_take_and_406_warns() -> None:
    async with running_gateway(gateway_config(None)) as gateway, udp_socket() as (transport, protocol):
        host, port = gateway.sip_address
        local = transport.get_extra_info("sockname")[:2]
        options = await send(gateway, request("OPTIONS", f"sip:{host}:{port}", local), transport, protocol)
        accept = {t.strip() for t in (header(options, "Accept") or "").split(",")}
        # INVITE/UPDATE (SDP), INFO (DTMF, trickle ICE, keyframe requests) and MESSAGE (text/plain)
        assert {
            "application/sdp",
            "application/dtmf-relay",
            "application/dtmf",
            "application/trickle-ice-sdpfrag",
            "application/media_control+xml",
            "text/plain",
        } <= accept, options
        refused = await send(
            gateway,
            request("INVITE", f"sip:1001@{host}:{port}", local, headers="Accept: text/html\r\n"),
            transport,
            protocol,
        )
    assert status_line(refused).startswith("SIP/2.0 406 "), refused
    assert header(refused, "Accept") == "application/sdp"
    assert "application/sdp" in (header(refused, "Warning") or ""), refused


async def test_a_tcp_register_before_a_broken_tail_is_answered_then_closed() -> None:
    """RFC 3261 §18.3 / RFC 4475 §3.1.1.8 on TCP: the whole REGISTER before the bytes that cannot be
    framed gets its 405 (the gateway is no registrar for the PBX side), then the connection closes."""
    tcp_port = free_port()
    listen = [
        {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)},
        {"transport": "tcp", "host": "127.0.0.1", "port": tcp_port},
    ]
    config = gateway_config(None, sip={"listen": listen, "trusted_sources": ["127.0.0.1/32"]})
    async with running_gateway(config):
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        try:
            here = writer.get_extra_info("sockname")
            register = (
                f"REGISTER sip:127.0.0.1:{tcp_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{here[1]};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                f"From: <sip:phone@127.0.0.1>;tag={secrets.token_hex(4)}\r\nTo: <sip:phone@127.0.0.1>\r\n"
                f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                f"Contact: <sip:phone@127.0.0.1:{here[1]};transport=tcp>\r\nContent-Length: 0\r\n\r\n"
            )
            tail = "INVITE sip:joe@example.com SIP/2.0\r\nContent-Length: x\r\n\r\n"
            writer.write((register + tail).encode())
            received = await asyncio.wait_for(reader.read(), 15)  # until the gateway closes
        finally:
            writer.close()
    text = received.decode("utf-8", "replace")
    assert status_line(text).startswith("SIP/2.0 405 "), text
    assert "REGISTER" not in (header(text, "Allow") or "") and "INVITE" in (header(text, "Allow") or "")


async def test_an_unreachable_pbx_is_named_to_the_browser_whole_and_without_its_address() -> None:
    """A browser over SIP WebSocket calls through a PBX address where nothing listens (ICMP port
    unreachable): its 503's reason phrase says the PBX is unreachable and how, in full (it was cut
    mid-word), and never the PBX's address (which the log keeps)."""
    closed = free_port(socket.SOCK_DGRAM)  # free now: nothing listens there
    config = websocket_config(f"127.0.0.1:{closed}")
    async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
        realm = realm_of(gateway)
        peer = WebPeer(1000)
        try:
            call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
            final = await call.invite(await peer.offer(), realm)
        finally:
            await peer.close()
    line = status_line(final)
    assert line.startswith("SIP/2.0 503 The PBX is unreachable (Destination Unreachable"), final
    assert line.endswith(")") and str(closed) not in final and "127.0.0.1:" not in line, final


OPUS_TE8K_OFFER = (  # snom/CUCM style: Opus with telephone-event/8000 only
    "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)


async def test_dtmf_with_opus_and_telephone_event_8000_counts_on_one_clock() -> None:
    """RFC 4733 §2.1, §2.3.5: a telephone-event's timestamp and duration count at its rtpmap's rate.
    A phone offering Opus with only telephone-event/8000: the web user's digit reaches it with its
    timestamp and its duration both at 8 kHz (the timestamp was on Opus's 48 kHz timeline). On the way,
    the gateway's SDP answer has an o= line of its own (it copied the offer's session id and version)."""
    config = gateway_config(None, media={"inactivity_timeout": 30})
    async with (
        running_gateway(config) as gateway,
        udp_socket() as (transport, protocol),
        udp_socket() as (rtp, media),
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        local = transport.get_extra_info("sockname")[:2]
        body = OPUS_TE8K_OFFER.format(port=rtp.get_extra_info("sockname")[1])
        uri = f"sip:1001@{host}:{port}"
        invite = request("INVITE", uri, local, headers="Content-Type: application/sdp\r\n", body=body)
        transport.sendto(invite.encode(), gateway.sip_address)
        peer = WebPeer(1000)
        try:
            incoming = await alice.wait_for("incoming")
            await alice.answer(incoming["call_id"], peer.answer)
            ok = await final_response(protocol)
            assert status_line(ok).startswith("SIP/2.0 200 "), ok
            assert "telephone-event/8000" in ok and "opus/48000" in ok, ok
            # our answer's o= is our own (RFC 8866 §5.2), not a copy of the offer's "phone 1 1"
            found = re.search(r"^o=(.*)$", ok, re.MULTILINE)
            origin = found.group(1).split() if found else []
            assert len(origin) == 6 and origin[0] != "phone" and origin[1:3] != ["1", "1"], ok
            ack = invite.replace("INVITE " + uri, "ACK " + uri, 1).replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            ack = re.sub(r"^To: .*$", "To: " + (header(ok, "To") or ""), ack, count=1, flags=re.MULTILINE)
            transport.sendto(ack.split("\r\n\r\n", 1)[0].encode() + b"\r\n\r\n", gateway.sip_address)
            audio = await _rtp(media, 96, count=10)  # Opus from the web user, on its 48 kHz timeline
            await alice.request({"type": "dtmf", "call_id": incoming["call_id"], "digits": "5"})
            events = await _rtp(media, 101, count=4)
        finally:
            await peer.close()
    stamps = {t for t, _ in events}
    assert len(stamps) == 1, events  # one event, one timestamp (RFC 4733 §2.5.1.2)
    durations = [int.from_bytes(p[2:4], "big") for _, p in events]
    assert durations == sorted(durations) and durations[0] % 160 == 0  # 20 ms packets at 8 kHz
    # the event's timestamp, at 8 kHz, is within a few seconds of the audio's at 48 kHz divided by 6 (at
    # 48 kHz it would be six times larger), on either side: the event's start is the gateway's estimate of
    # "now" on the audio's timeline, a few ms before the last audio packet seen here on a loaded runner
    expected = (audio[-1][0] * 8000 // 48000) & 0xFFFF_FFFF
    offset = ((stamps.pop() - expected + 2**31) & 0xFFFF_FFFF) - 2**31
    assert abs(offset) < 8000 * 5, (audio[-1][0], events)


async def _rtp(media: Udp, payload_type: int, count: int) -> list[tuple[int, bytes]]:
    """(timestamp, payload) of the next ``count`` RTP packets of ``payload_type`` received."""
    found: list[tuple[int, bytes]] = []
    async with asyncio.timeout(20):
        while len(found) < count:
            data = await media.packets.get()
            if len(data) >= 12 and data[1] & 0x7F == payload_type:
                found.append((int.from_bytes(data[4:8], "big"), data[12:]))
    return found
