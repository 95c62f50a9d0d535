"""The SIP leg answering a DTLS-SRTP offer (gateway/media/rtp/sip_leg.py, sip_dtls.py) on 127.0.0.1, against
a peer made of our own sans-I/O association on a plain UDP socket: the handshake on the RTP socket,
SRTP both ways once it is done and not before, and a peer whose certificate is not the one its SDP
names ending the call with that reason."""

from __future__ import annotations

import asyncio
import struct

import pytest

import sdp
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice as choice
from gateway.media.rtp.dtls_srtp import DtlsCertificate, DtlsSrtp, is_dtls
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.rtp.sip_leg import SipLeg

Address = tuple[str, int]


class Peer(asyncio.DatagramProtocol):
    """A SIP phone's media side: a DTLS server (it offers actpass, the gateway answers active)."""

    def __init__(self, certificate: DtlsCertificate, expected: sdp.Fingerprint) -> None:
        self.dtls = DtlsSrtp(certificate, client=False, remote=[expected], call_id="peer")
        self.dtls.start(0.0)
        self.transport: asyncio.DatagramTransport | None = None
        self.rtp: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        if is_dtls(data):
            for out in self.dtls.receive(data, asyncio.get_running_loop().time()):
                self.transport.sendto(out, addr)
        elif self.dtls.connected:
            self.rtp.append(self.dtls.unprotect(data))


def offer(port: int, fingerprint: sdp.Fingerprint) -> sdp.SessionDescription:
    return sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n"
        f"a=fingerprint:{fingerprint.to_sdp()}\r\na=setup:actpass\r\na=sendrecv\r\n"
    )


async def answered_leg(
    peer_certificate: DtlsCertificate, named: sdp.Fingerprint
) -> tuple[SipLeg, Peer, list[str], list[RtpPacket], asyncio.DatagramTransport]:
    settings = BridgeSettings(RtpPortAllocator(PortRange(37600, 37699)), sip_srtp="optional")
    failures: list[str] = []
    received: list[RtpPacket] = []
    leg = SipLeg(settings, on_rtp=received.append, on_inactive=lambda: None, on_failed=failures.append)
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: Peer(peer_certificate, DtlsCertificate().fingerprint), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    await leg.open([choice.known("PCMU")])
    answer = leg.answer(offer(port, named), choice.known("PCMU"))
    assert answer.media[0].setup is sdp.Setup.ACTIVE and answer.media[0].rtcp_mux
    return leg, peer, failures, received, transport


async def test_the_handshake_runs_on_the_rtp_socket_and_media_waits_for_it() -> None:
    certificate = DtlsCertificate()
    leg, peer, failures, received, transport = await answered_leg(certificate, certificate.fingerprint)
    try:
        assert leg.endpoint is not None and leg.dtls is not None
        assert not leg.endpoint.send_rtp(0, b"\xff" * 160, 0)  # no keys yet: nothing goes out
        peer.dtls.remote = (leg.dtls.associations["rtp"].certificate.fingerprint,)
        for _ in range(100):
            if leg.dtls.ready and peer.dtls.connected:
                break
            await asyncio.sleep(0.02)
        assert leg.dtls.ready and peer.dtls.connected and not failures
        assert leg.endpoint.srtp is leg.dtls
        sessions = leg.dtls.sessions  # for the fast lane: None before the handshake
        assert sessions is not None and sessions[0] is not sessions[1]
        assert leg.endpoint.send_rtp(0, b"\xff" * 160, 160)
        packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x4242) + b"\x7f" * 160
        assert transport is not None
        transport.sendto(peer.dtls.protect(packet), leg.endpoint.local_rtp_address)
        for _ in range(50):
            if peer.rtp and received:
                break
            await asyncio.sleep(0.02)
        assert RtpPacket.parse(peer.rtp[0]).payload == b"\xff" * 160
        assert received[0].ssrc == 0x4242 and received[0].payload == b"\x7f" * 160
    finally:
        leg.close()
        transport.close()


async def test_a_certificate_that_is_not_the_one_in_the_sdp_ends_the_call_with_that_reason() -> None:
    named = DtlsCertificate().fingerprint  # the SDP names another certificate than the peer's
    leg, peer, failures, _, transport = await answered_leg(DtlsCertificate(), named)
    try:
        assert leg.dtls is not None
        peer.dtls.remote = (leg.dtls.associations["rtp"].certificate.fingerprint,)
        for _ in range(100):
            if failures:
                break
            await asyncio.sleep(0.02)
        assert len(failures) == 1
        assert "SIP leg's RTP" in failures[0] and "does not match its a=fingerprint" in failures[0]
        assert not leg.dtls.ready
    finally:
        leg.close()
        transport.close()


@pytest.mark.parametrize("mode", ["off"])
async def test_with_sip_srtp_off_the_leg_never_starts_dtls(mode: str) -> None:
    settings = BridgeSettings(RtpPortAllocator(PortRange(37700, 37799)), sip_srtp=mode)
    leg = SipLeg(settings, on_rtp=lambda p: None, on_inactive=lambda: None)
    await leg.open([choice.known("PCMU")])
    try:
        with pytest.raises(sdp.SdpUnacceptable):
            leg.answer(offer(40000, DtlsCertificate().fingerprint), choice.known("PCMU"))
        assert leg.dtls is None
    finally:
        leg.close()
