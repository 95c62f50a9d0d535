"""The transaction layer on the real event loop and loopback sockets, driven by raw messages and by
a second layer: error responses, source policy, retransmissions, CANCEL, 482/483, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol

import pytest

from gateway.sip.transactions.layer import LayerState, TransactionLayer
from gateway.sip.transactions.policy import AcceptAll, SourcePolicy, TrustedSources
from gateway.sip.transports.transport import Transport
from peers.binaries import require_ipv6_loopback
from sipcore import Request, Response, SIPError, Via, make_response, parse_message
from sipcore.errors import TransportError
from sipcore.location.routing import Target
from sipcore.syntax.parser import Framing
from sipcore.transaction import Notice, TimerConfig
from tests.sip.layer_ua import TestUA, make_request

FAST = TimerConfig(t1=0.02, t2=0.16, t4=0.2)  # 64*T1 = 1.28 s


class RawUdp(asyncio.DatagramProtocol):
    """A bare UDP socket that speaks SIP by hand."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.raw: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> RawUdp:
        _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, local_addr=("127.0.0.1", 0)
        )
        return protocol

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.raw.append(data)
        with contextlib.suppress(SIPError):  # a 400 copying the bad header: read self.raw
            self.queue.put_nowait(parse_message(data))

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data.replace(b"PORT", str(self.port).encode()), address)

    async def recv(self, timeout: float = 2.0) -> Request | Response:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def response(self, status: int, timeout: float = 2.0) -> Response:
        """The next response with this status, skipping others."""
        while True:
            message = await self.recv(timeout)
            if isinstance(message, Response) and message.status == status:
                return message

    async def silence(self, seconds: float = 0.2) -> list[Request | Response]:
        await asyncio.sleep(seconds)
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def raw(method: str, *, branch: str = "z9hG4bKraw1", call_id: str = "raw-1", cseq: int = 1,
        cseq_method: str | None = None, from_tag: str = "ft", to_tag: str | None = None,
        extra: str = "", via_host: str = "127.0.0.1:9;rport") -> bytes:  # fmt: skip
    """A request from RawUdp (PORT is replaced by its port). The Via names port 9 with rport:
    the answer only reaches the raw socket if the layer honours rport (RFC 3581)."""
    to = "<sip:uas@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:uas@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:raw@127.0.0.1:PORT>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:raw@127.0.0.1:PORT>",
    ]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


class LayerFactory(Protocol):
    def __call__(
        self,
        *,
        policy: SourcePolicy | None = None,
        timers: TimerConfig = ...,
        host: str = ...,
        ring: bool = ...,
        answer: bool = ...,
    ) -> Awaitable[tuple[TransactionLayer, TestUA]]: ...


@pytest.fixture
async def make_layer() -> AsyncIterator[LayerFactory]:
    layers: list[TransactionLayer] = []

    async def make(
        *,
        policy: SourcePolicy | None = None,
        timers: TimerConfig = FAST,
        host: str = "127.0.0.1",
        ring: bool = True,
        answer: bool = True,
    ) -> tuple[TransactionLayer, TestUA]:
        tu = TestUA(ring=ring, answer=answer)
        layer = TransactionLayer(tu, policy=policy or AcceptAll(), timers=timers, user_agent="test-layer")
        tu.layer = layer
        layers.append(layer)
        await layer.listen("udp", host, 0)
        await layer.listen("tcp", host, 0)
        return layer, tu

    yield make
    for layer in layers:
        await layer.close()
        await layer.close()  # idempotent
        assert layer.state is LayerState.CLOSED


@pytest.fixture
async def peer() -> AsyncIterator[RawUdp]:
    sock = await RawUdp.open()
    yield sock
    sock.close()


def udp(layer: TransactionLayer) -> Transport:
    return next(t for t in layer.transports if t.name == "UDP")


def target(layer: TransactionLayer, name: str = "UDP") -> Target:
    transport = next(t for t in layer.transports if t.name == name)
    return Target(name, *transport.local)


async def test_malformed_request_gets_400_naming_the_header(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer()
    peer.send(raw("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"), udp(layer).local)
    await asyncio.sleep(0.2)
    assert len(peer.raw) == 1
    status_line = peer.raw[0].split(b"\r\n")[0].decode()
    assert status_line.startswith("SIP/2.0 400 Bad Request: invalid CSeq 'one OPTIONS'"), status_line
    assert b"CSeq: one OPTIONS" in peer.raw[0]
    peer.raw.clear()
    # A malformed response and a malformed ACK are dropped.
    peer.send(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", udp(layer).local)
    peer.send(raw("ACK").replace(b"CSeq: 1 ACK", b"CSeq: x ACK"), udp(layer).local)
    assert await peer.silence() == [] and peer.raw == [] and tu.requests == []


async def test_untrusted_source_gets_403_and_acks_are_dropped(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(policy=TrustedSources([ipaddress.ip_network("10.0.0.0/8")]))
    peer.send(raw("INVITE"), udp(layer).local)
    assert (await peer.response(403)).reason == "Forbidden"
    peer.send(raw("ACK", branch="z9hG4bKack"), udp(layer).local)
    peer.send(raw("BYE", to_tag="x"), udp(layer).local)
    assert [m.status for m in await peer.silence() if isinstance(m, Response)] == [403]
    assert tu.requests == [] and tu.acks == []


async def test_trusted_source_and_received_rport(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(policy=TrustedSources([ipaddress.ip_network("127.0.0.0/8")]))
    peer.send(raw("OPTIONS"), udp(layer).local)
    await peer.response(200)
    via = tu.requests[0].request.top_via
    assert via is not None and via.param("received") == "127.0.0.1" and via.param("rport") == str(peer.port)


async def test_retransmitted_invite_is_absorbed(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(answer=False)
    peer.send(raw("INVITE"), udp(layer).local)
    await peer.response(100)
    await peer.response(180)
    peer.send(raw("INVITE"), udp(layer).local)  # retransmission: the last response again
    await peer.response(180)
    assert len(tu.requests) == 1
    tu.requests[0].reply(486)
    for _ in range(2):  # Timer G retransmits the 486 until the ACK
        await peer.response(486)
    peer.send(raw("ACK"), udp(layer).local)  # same branch: ACK to a non-2xx, absorbed
    await asyncio.sleep(0.1)
    assert [m for m in await peer.silence() if isinstance(m, Response) and m.status == 486] == []
    assert tu.acks == []


async def test_2xx_is_retransmitted_until_ack(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer()
    peer.send(raw("INVITE"), udp(layer).local)
    first = await peer.response(200)
    await peer.response(200)  # T1 later, again
    to_tag = first.to.tag if first.to else None
    peer.send(raw("ACK", branch="z9hG4bKack2", to_tag=to_tag), udp(layer).local)
    await tu.wait_for(lambda: tu.ack_results)
    assert tu.ack_results == [True] and len(tu.acks) == 1
    await asyncio.sleep(0.1)
    assert not [m for m in await peer.silence() if isinstance(m, Response)]
    # Without an ACK the UAS core gives up after 64*T1 (RFC 3261 §13.3.1.4).
    peer.send(raw("INVITE", branch="z9hG4bKnoack", call_id="raw-2"), udp(layer).local)
    await tu.wait_for(lambda: len(tu.ack_results) == 2, timeout=3)
    assert tu.ack_results == [True, False]


async def test_cancel_flow(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(answer=False)
    peer.send(raw("INVITE"), udp(layer).local)
    await peer.response(180)
    peer.send(raw("CANCEL"), udp(layer).local)  # same branch, RFC 3261 §9.1
    ok = await peer.response(200)
    assert ok.cseq is not None and ok.cseq.method == "CANCEL"
    terminated = await peer.response(487)
    assert terminated.cseq is not None and terminated.cseq.method == "INVITE"
    peer.send(raw("ACK", to_tag=terminated.to.tag if terminated.to else None), udp(layer).local)
    peer.send(raw("CANCEL"), udp(layer).local)  # a retransmitted CANCEL: 200 again, no new on_cancel
    await peer.response(200)
    assert len(tu.cancels) == 1 and tu.requests[0].cancelled and tu.acks == []


async def test_cancel_without_invite_gets_481(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer()
    peer.send(raw("CANCEL", branch="z9hG4bKnothing"), udp(layer).local)
    await peer.response(481)
    assert tu.cancels == [] and tu.requests == []


async def test_merged_request_gets_482(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(answer=False)
    peer.send(raw("INVITE", branch="z9hG4bKpath1"), udp(layer).local)
    await peer.response(180)
    peer.send(raw("INVITE", branch="z9hG4bKpath2"), udp(layer).local)  # forked copy, RFC 3261 §8.2.2.2
    await peer.response(482)
    peer.send(raw("INVITE", branch="z9hG4bKpath2"), udp(layer).local)  # its retransmission
    await peer.response(482)
    assert len(tu.requests) == 1


async def test_max_forwards_zero_gets_483_but_options_is_answered(
    make_layer: LayerFactory, peer: RawUdp
) -> None:
    layer, tu = await make_layer()
    peer.send(raw("INFO").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), udp(layer).local)
    await peer.response(483)
    peer.send(
        raw("OPTIONS", branch="z9hG4bKo").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), udp(layer).local
    )
    await peer.response(200)
    assert tu.methods() == ["OPTIONS"]


async def test_tu_exception_gets_500(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer()

    async def broken(incoming: object) -> None:
        raise RuntimeError("bug")

    tu.on_request = broken  # type: ignore[method-assign]
    peer.send(raw("OPTIONS"), udp(layer).local)
    await peer.response(500)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_layer_to_layer_call(make_layer: LayerFactory, transport: str) -> None:
    uas_layer, uas = await make_layer()
    _, uac = await make_layer()
    far = target(uas_layer, transport)
    final = await uac.call(f"sip:uas@127.0.0.1:{far.port};transport={transport.lower()}", far)
    assert final.status == 200 and final.body.startswith(b"v=0")
    await uas.wait_for(lambda: uas.ack_results)
    assert uas.methods() == ["INVITE", "BYE"] and uas.ack_results == [True] and len(uas.acks) == 1


async def test_layer_to_layer_ipv6(make_layer: LayerFactory) -> None:
    require_ipv6_loopback()
    uas_layer, uas = await make_layer(host="::1")
    _, uac = await make_layer(host="::1")
    for name in ("UDP", "TCP"):
        far = target(uas_layer, name)
        final = await uac.call(f"sip:uas@[::1]:{far.port};transport={name.lower()}")
        assert final.status == 200
    via = uas.requests[0].request.top_via
    assert via is not None and via.host.startswith("[::1]")


async def test_cancel_from_our_uac(make_layer: LayerFactory) -> None:
    uas_layer, uas = await make_layer(answer=False, ring=False)
    uac_layer, _ = await make_layer()
    far = target(uas_layer)
    handle = await uac_layer.request(make_request("INVITE", f"sip:uas@127.0.0.1:{far.port}"), far)
    handle.cancel()  # before any provisional: deferred until the 100 Trying (RFC 3261 §9.1)
    statuses = [response.status async for response in handle]
    assert statuses == [100, 487]
    assert handle.cancel_transaction is not None
    assert (await handle.cancel_transaction.final_response()).status == 200
    assert len(uas.cancels) == 1


async def test_timeout_gives_408_quickly(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, _ = await make_layer()
    silent = Target("UDP", "127.0.0.1", peer.port)
    started = time.monotonic()
    invite, options = await asyncio.gather(
        layer.request(make_request("INVITE", f"sip:x@127.0.0.1:{peer.port}"), silent),
        layer.request(make_request("OPTIONS", f"sip:x@127.0.0.1:{peer.port}"), silent),
    )
    finals = [await invite.final_response(), await options.final_response()]
    assert [f.status for f in finals] == [408, 408]
    assert invite.failure is Notice.TIMEOUT and options.failure is Notice.TIMEOUT
    assert time.monotonic() - started < 3  # Timer B/F = 64*T1 = 1.28 s
    sent = [parse_message(data) for data in peer.raw]
    invites = [m for m in sent if isinstance(m, Request) and m.method == "INVITE"]
    assert 5 <= len(invites) <= 8  # Timer A: 0, T1, 3T1, 7T1, ... < 64T1
    via = invites[0].top_via
    assert via is not None and via.param("rport") == "" and str(via.branch).startswith("z9hG4bK")
    assert layer.pending == 0


async def test_transport_errors_give_503(make_layer: LayerFactory) -> None:
    layer, _ = await make_layer()

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        refused = await layer.request(make_request("INVITE", f"sip:x@127.0.0.1:{port};transport=tcp"))
        assert (await refused.final_response()).status == 503
    assert refused.failure is Notice.TRANSPORT_ERROR
    unknown = await layer.request(make_request("OPTIONS", "sip:x@no-such-host.invalid"))
    assert (await unknown.final_response()).status == 503
    no_tls = await layer.request(make_request("OPTIONS", "sips:x@127.0.0.1"))
    assert (await no_tls.final_response()).status == 503


async def test_responses_outside_the_transaction(make_layer: LayerFactory, peer: RawUdp) -> None:
    """A retransmitted 2xx goes to on_stray_response (the UAC core ACKs it again, RFC 3261
    §13.2.2.4); a response whose Via sent-by is not ours is dropped (§18.1.2)."""
    layer, tu = await make_layer()
    handle = await layer.request(
        make_request("INVITE", f"sip:x@127.0.0.1:{peer.port}"), Target("UDP", "127.0.0.1", peer.port)
    )
    invite = await peer.recv()
    assert isinstance(invite, Request)
    ok = make_response(invite, 200, to_tag="uas")
    via = invite.top_via
    assert via is not None
    forged = ok.headers.replace("Via", str(Via(via.transport, "192.0.2.99", 5060, via.params)))
    peer.send(Response(200, "OK", forged).serialize(), udp(layer).local)
    await asyncio.sleep(0.05)
    assert handle.final is None
    peer.send(ok.serialize(), udp(layer).local)
    assert (await handle.final_response()).status == 200
    peer.send(ok.serialize(), udp(layer).local)  # retransmission while Accepted
    await tu.wait_for(lambda: len(tu.strays) == 1)
    other = make_response(invite, 200, to_tag="uas").headers.replace(
        "Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKnone"
    )
    peer.send(Response(200, "OK", other).serialize(), udp(layer).local)  # matches no transaction
    await tu.wait_for(lambda: len(tu.strays) == 2)
    peer.send(Response(180, "Ringing", other).serialize(), udp(layer).local)  # dropped
    await asyncio.sleep(0.05)
    assert len(tu.strays) == 2


async def test_send_stateless_response_and_closed_layer(make_layer: LayerFactory, peer: RawUdp) -> None:
    layer, tu = await make_layer(answer=False, ring=False)
    peer.send(raw("INFO"), udp(layer).local)
    await peer.response(200)
    incoming = tu.requests[0]
    late = make_response(incoming.request, 200, to_tag="again")
    sent = await layer.send_stateless(late, incoming.source)  # along the Via: received + rport
    assert sent is late
    assert (await peer.response(200)).to == late.to
    await layer.close()
    with pytest.raises(TransportError):
        await layer.request(make_request("OPTIONS", f"sip:x@127.0.0.1:{peer.port}"))


async def test_tcp_response_reopens_a_connection_to_sent_by(make_layer: LayerFactory) -> None:
    """RFC 3261 §18.2.2: the request's connection is gone when the TU answers, so the response goes
    over a new connection to the received address and the Via sent-by port."""
    layer, tu = await make_layer(answer=False, ring=False)
    tcp = next(t for t in layer.transports if t.name == "TCP")
    arrived: asyncio.Queue[bytes] = asyncio.Queue()

    async def sent_by(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(sent_by, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(*tcp.local)
    invite = raw("INVITE").replace(b"SIP/2.0/UDP 127.0.0.1:9;rport", f"SIP/2.0/TCP 127.0.0.1:{port}".encode())
    invite = invite.replace(b"PORT", str(port).encode())
    writer.write(invite)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"SIP/2.0 100")
    writer.close()
    await writer.wait_closed()
    await tu.wait_for(lambda: tu.requests)
    await asyncio.sleep(0.1)
    tu.requests[0].reply(486)
    assert (await asyncio.wait_for(arrived.get(), 5)).startswith(b"SIP/2.0 486")
    server.close()


async def test_lost_tcp_connection_fails_pending_transactions_with_503(make_layer: LayerFactory) -> None:
    layer, _ = await make_layer()

    async def trying_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request = parse_message(head, framing=Framing.STREAM)
        assert isinstance(request, Request)
        writer.write(make_response(request, 100).serialize())
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()

    server = await asyncio.start_server(trying_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    handle = await layer.request(make_request("INVITE", f"sip:x@127.0.0.1:{port};transport=tcp"))
    assert [r.status async for r in handle] == [100, 503]
    assert handle.failure is Notice.TRANSPORT_ERROR and time.monotonic() - started < 1
    server.close()
