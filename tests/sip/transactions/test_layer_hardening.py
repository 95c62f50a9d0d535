"""Hardening of the transaction layer against hostile peers: responses are never steered to a
third party, a broken message costs that message only, streams cannot be stalled or framed
quadratically, and untrusted sources are refused before the expensive work."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest

from gateway.sip.transactions.policy import TrustedSources
from sipcore import BadRequest, Request, make_response
from sipcore.syntax.message import add_received
from sipcore.syntax.parser import Framing, parse_message
from tests.sip.layer_ua import make_request
from tests.sip.transactions.test_layer import LayerFactory, RawUdp, make_layer, peer, raw, udp

__all__ = ["make_layer", "peer"]  # fixtures

UNTRUSTED = TrustedSources([ipaddress.ip_network("10.0.0.0/8")])


@pytest.fixture
async def victim() -> AsyncIterator[RawUdp]:
    """A third party on another loopback address, who must never hear from the gateway."""
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        RawUdp, local_addr=("127.0.0.2", 0)
    )
    yield protocol
    protocol.close()


def _aimed(victim: RawUdp, via: str, *, cseq: str = "1 OPTIONS") -> bytes:
    return (
        "OPTIONS sip:x@gw SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via.replace('VPORT', str(victim.port))}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("via", "cseq", "status"),
    [
        # A forged received, no rport, sent-by = the real source: the 403 followed received.
        ("127.0.0.1:VPORT;received=127.0.0.2;branch=z9hG4bK-1", "1 OPTIONS", 403),
        ("127.0.0.1:VPORT;received=127.0.0.2;rport=VPORT;branch=z9hG4bK-1", "1 OPTIONS", 403),
        # A Via naming the victim: the 403 followed sent-by.
        ("127.0.0.2:VPORT;branch=z9hG4bK-2", "1 OPTIONS", 403),
        # A parse error: the 400 followed the raw Via.
        ("127.0.0.2:VPORT;branch=z9hG4bK-2", "notanumber OPTIONS", 400),
        ("127.0.0.1:VPORT;received=127.0.0.2;branch=z9hG4bK-3", "notanumber OPTIONS", 400),
    ],
)
async def test_rejections_go_to_the_source_never_a_third_party(
    make_layer: LayerFactory, peer: RawUdp, victim: RawUdp, via: str, cseq: str, status: int
) -> None:
    layer, tu = await make_layer(policy=UNTRUSTED)
    peer.send(_aimed(victim, via, cseq=cseq), udp(layer).local)
    await asyncio.sleep(0.2)
    assert victim.raw == []
    assert len(peer.raw) == 1 and peer.raw[0].startswith(f"SIP/2.0 {status} ".encode())
    assert tu.requests == []


async def test_forged_received_is_removed_for_trusted_sources(
    make_layer: LayerFactory, peer: RawUdp, victim: RawUdp
) -> None:
    """RFC 3261 §18.2.1: the layer owns received; the sender's is overwritten or removed."""
    layer, tu = await make_layer(policy=TrustedSources([ipaddress.ip_network("127.0.0.1/32")]))
    peer.send(raw("OPTIONS", via_host="127.0.0.1:PORT;received=127.0.0.2"), udp(layer).local)
    await peer.response(200)
    assert victim.raw == []
    via = tu.requests[0].request.top_via
    assert via is not None and via.param("received") is None


def test_add_received_overwrites_or_removes_a_forged_received() -> None:
    data = _aimed_text("127.0.0.1:5060;received=203.0.113.9;branch=z9hG4bK-1")
    request = parse_message(data)
    assert isinstance(request, Request)
    same = add_received(request, ("127.0.0.1", 5060)).top_via
    assert same is not None and same.param("received") is None
    other = add_received(request, ("192.0.2.1", 5060)).top_via
    assert other is not None and other.param("received") == "192.0.2.1"
    with_rport = parse_message(_aimed_text("127.0.0.1:5060;received=203.0.113.9;rport=1;branch=z9hG4bK-1"))
    assert isinstance(with_rport, Request)
    fixed = add_received(with_rport, ("127.0.0.1", 4000)).top_via
    assert fixed is not None and (fixed.param("received"), fixed.param("rport")) == ("127.0.0.1", "4000")


def _aimed_text(via: str) -> bytes:
    return (
        f"OPTIONS sip:x@gw SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\nMax-Forwards: 70\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_bad_response_costs_one_message_not_the_connection(make_layer: LayerFactory) -> None:
    """A response the parser lets through but the value objects refuse (control characters in
    the reason phrase) must not close the TCP connection and fail its transactions."""
    layer, _ = await make_layer()

    async def garbled_then_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request = parse_message(head, framing=Framing.STREAM)
        assert isinstance(request, Request)
        ok = make_response(request, 200).serialize()
        writer.write(ok.replace(b"200 OK\r\n", b"200 OK\r\x01\r\n", 1))
        writer.write(b"SIP/2.0 200 O\x00K\r\n" + ok.split(b"\r\n", 1)[1])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(ok)
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(garbled_then_ok, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    handle = await layer.request(make_request("OPTIONS", f"sip:x@127.0.0.1:{port};transport=tcp"))
    assert (await handle.final_response()).status == 200
    server.close()


def test_status_line_with_control_characters_is_a_bad_request() -> None:
    for line in (b"SIP/2.0 200 OK\r\x01", b"SIP/2.0 200 O\x00K", b"SIP/2.0 200 \x7f"):
        with pytest.raises(BadRequest, match="control character"):
            parse_message(line + b"\r\n" + _aimed_text("h;branch=z9hG4bK-1").split(b"\r\n", 1)[1])


async def test_untrusted_requests_are_refused_before_the_full_parse(
    make_layer: LayerFactory, peer: RawUdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy sees a light view first: a refused request costs no full parse; one inside
    a dialog (the policy's in_dialog hook) still gets through from the same untrusted source."""
    import gateway.sip.transactions.layer as layer_module

    parsed: list[bytes] = []

    def counting(data: bytes, **kwargs: object) -> object:
        parsed.append(data)
        return parse_message(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(layer_module, "parse_message", counting)
    policy = TrustedSources(
        [ipaddress.ip_network("10.0.0.0/8")], in_dialog=lambda request: request.call_id == "in-dialog"
    )
    layer, tu = await make_layer(policy=policy)
    quoted = 'Contact: "' + '\\\\"' * 3000 + '" <sip:x@y>'
    peer.send(raw("INVITE", extra=quoted), udp(layer).local)
    assert (await peer.response(403)).reason == "Forbidden"
    peer.send(raw("ACK", branch="z9hG4bKack"), udp(layer).local)
    assert parsed == []
    peer.send(raw("BYE", call_id="in-dialog", to_tag="t", branch="z9hG4bKbye"), udp(layer).local)
    await peer.response(200)
    assert len(parsed) == 1 and [r.method for r in tu.requests] == ["BYE"]


async def test_oversized_datagrams_are_dropped(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer()
    assert layer.max_datagram_size == 16384
    pad = "\r\n".join(["X-Pad: " + "a" * 1000] * 17)
    peer.send(raw("OPTIONS", extra=pad), udp(layer).local)
    assert await peer.silence() == [] and tu.requests == []
    pad = "\r\n".join(["X-Pad: " + "a" * 1000] * 15)
    peer.send(raw("OPTIONS", extra=pad, branch="z9hG4bKsmall"), udp(layer).local)
    await peer.response(200)


async def test_line_feed_flood_and_garbage_on_tcp_keep_the_connection(make_layer: LayerFactory) -> None:
    layer, tu = await make_layer()
    tcp = next(t for t in layer.transports if t.name == "TCP")
    reader, writer = await asyncio.open_connection(*tcp.local)
    options = raw("OPTIONS").replace(b"SIP/2.0/UDP 127.0.0.1:9;rport", b"SIP/2.0/TCP 127.0.0.1:9")
    options = options.replace(b"PORT", b"9")
    writer.write(b"\n" * 3000 + b"SIP/2.0 200 OK\r\x01\r\n" + options.split(b"\r\n", 1)[1] + options)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"SIP/2.0 200")
    assert [r.method for r in tu.requests] == ["OPTIONS"]
    writer.close()


async def test_a_request_missing_call_id_from_and_to_gets_its_400_on_the_wire(
    make_layer: LayerFactory, peer: RawUdp
) -> None:
    """RFC 4475 §3.3.1 (insuf): a response can still be built from Via and CSeq, so one is sent."""
    layer, tu = await make_layer()
    insuf = (
        "INVITE sip:user@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKkdj.insuf\r\n"
        "CSeq: 193942 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    peer.send(insuf, udp(layer).local)
    await asyncio.sleep(0.2)
    assert len(peer.raw) == 1 and peer.raw[0].startswith(b"SIP/2.0 400 Bad Request: missing ")
    assert b"CSeq: 193942 INVITE" in peer.raw[0] and b"branch=z9hG4bKkdj.insuf" in peer.raw[0]
    assert tu.requests == []
