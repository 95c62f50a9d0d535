"""What desk phones and PBXs do on the plain RTP leg, through a real bridge on 127.0.0.1: other packet
times (a=ptime), RFC 2543 hold (c=0.0.0.0), RTCP on a port of its own (a=rtcp without rtcp-mux), comfort
noise, several audio m-lines, and a far end whose source address or SSRC changes mid-call."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re

import pytest

import sdp
from gateway.media.events import MediaInactive
from gateway.media.rtp.latch import RELATCH_PACKETS
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import RtpPortAllocator
from peers.audio import RtpTonePeer
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


def phone_audio(call: Call) -> list[RtpPacket]:
    return [p for p in call.phone.packets if p.payload_type == call.phone.payload_type]


async def test_a_phone_asking_for_30_ms_gets_30_ms_packets_and_hears_the_browser(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports)
    try:
        await call.phone.start()
        plain = await call.bridge.offer_to_sip(await call.web.offer())
        offer = sdp.parse(plain)
        call.phone.remote = call.bridge_address = (
            offer.connection.address if offer.connection else "",
            offer.media[0].port,
        )
        answer = call.phone_answer(offer, call.phone).replace("a=ptime:20", "a=ptime:30")
        assert "a=ptime:30" in answer
        await call.web.accept(await call.bridge.answer_from_sip(answer))
        await call.connected()
        await call.play(1.0)
        packets = phone_audio(call)[5:-2]  # steady state
        assert packets and {len(p.payload) for p in packets} == {240}
        steps = {(b.timestamp - a.timestamp) & 0xFFFF_FFFF for a, b in itertools.pairwise(packets)}
        assert steps == {240}, steps
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
    finally:
        await call.close()


async def test_rfc_2543_hold_stops_audio_to_the_phone_until_it_resumes(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(0.3)
        assert phone_audio(call), "no audio before the hold"
        hold = call.phone_offer(version=2).replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
        answer = sdp.parse(await call.bridge.update_from_sip(hold))
        assert answer.direction_for(0) is sdp.Direction.RECVONLY  # we cannot send to 0.0.0.0
        await asyncio.sleep(0.1)
        before = len(phone_audio(call))
        await asyncio.sleep(0.6)  # the browser's tone goes on all along
        assert len(phone_audio(call)) == before, "audio was sent to a phone that holds with c=0.0.0.0"
        await call.bridge.update_from_sip(call.phone_offer(version=3))
        await call.play(0.6)
        assert len(phone_audio(call)) > before + 10 and call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_rtcp_goes_to_the_port_a_rtcp_names(ports: RtpPortAllocator) -> None:
    received: list[bytes] = []

    class Rtcp(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Rtcp, local_addr=("127.0.0.1", 0))
    rtcp_port = transport.get_extra_info("sockname")[1]
    call = Call(ports)
    try:
        await call.phone.start()
        offer = call.phone_offer()
        offer = re.sub(r"a=rtcp:\d+[^\r\n]*", f"a=rtcp:{rtcp_port}", offer)  # not port + 1, no rtcp-mux
        web_answer = await call.web.answer(await call.bridge.offer_to_web(offer))
        answer = sdp.parse(await call.bridge.answer_from_web(web_answer))
        call.phone.remote = (answer.connection.address if answer.connection else "", answer.media[0].port)
        await call.connected()
        # the first report comes within 1.25-3.75 s (RFC 3550 §6.2); at load 5 none had come in 6 s
        deadline = loop.time() + 15
        while not received and loop.time() < deadline:
            await call.play(0.1)
        assert received and received[0][0] >> 6 == 2 and received[0][1] in (200, 201)  # SR or RR
        assert not any(p.payload_type in (200, 201) for p in call.phone.packets)  # not on the RTP port
    finally:
        transport.close()
        await call.close()


async def test_comfort_noise_is_dropped_and_keeps_the_call_alive(ports: RtpPortAllocator) -> None:
    call = Call(ports, inactivity_timeout=1.0)
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(0.3)
        await asyncio.sleep(0.2)
        heard = len(call.web.payloads)
        phone = call.phone
        for _ in range(10):  # 2 s of silence described by CN every 200 ms (RFC 3389 §4)
            rtp = RtpPacket(13, phone.sequence, phone.timestamp, phone.ssrc, b"\x40")
            phone.send_raw(rtp.serialize())
            phone.sequence = (phone.sequence + 1) & 0xFFFF
            phone.timestamp = (phone.timestamp + 1600) & 0xFFFF_FFFF
            await asyncio.sleep(0.2)
        assert len(call.web.payloads) <= heard + 1, "comfort noise reached the browser"
        assert not call.of_type(MediaInactive), "a phone sending comfort noise was taken for silent"
        await call.play(0.4)
        assert call.web.heard(SIP_TONE, last=0.3)
    finally:
        await call.close()


async def test_the_first_usable_of_several_audio_lines_is_answered_and_the_others_rejected(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports)
    try:
        await call.phone.start()
        offer = call.phone_offer()
        head, media = offer.split("m=audio", 1)
        g729 = "m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
        offer = head + g729 + "m=audio" + media + "m=audio 40002 RTP/AVP 0\r\n"
        web_answer = await call.web.answer(await call.bridge.offer_to_web(offer))
        answer = sdp.parse(await call.bridge.answer_from_web(web_answer))
        assert [m.port == 0 for m in answer.media] == [True, False, True]  # as many m-lines as offered
        call.phone.remote = (answer.connection.address if answer.connection else "", answer.media[1].port)
        await call.connected()
        await call.play(0.8)
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
    finally:
        await call.close()


async def test_a_far_end_that_moves_is_followed_and_logged(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    call = Call(ports)
    moved = RtpTonePeer(0, ssrc=call.phone.ssrc)
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(0.3)
        await moved.start()
        moved.remote, moved.sequence, moved.timestamp = (
            call.phone.remote,
            call.phone.sequence,
            call.phone.timestamp,
        )
        with caplog.at_level(logging.INFO, logger="gateway.media"):
            call.web.clear()
            await call.play(1.0, freq=700.0, peer=moved)  # the same stream, now from another port
        assert any(f"latched to 127.0.0.1:{moved.address[1]}" in r.getMessage() for r in caplog.records)
        assert call.web.heard(700.0, last=0.5), "the moved phone is not heard"
        assert moved.heard(WEB_TONE), "the browser's audio did not follow the phone"
        assert RELATCH_PACKETS <= 20  # followed within 0.4 s of 20 ms packets
    finally:
        moved.close()
        await call.close()


async def test_a_new_ssrc_mid_call_is_heard_and_logged(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    call = Call(ports)
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(0.4)
        old = call.phone.ssrc
        call.phone.ssrc = old ^ 0x5A5A5A5A
        call.phone.timestamp = (call.phone.timestamp + 123456) & 0xFFFF_FFFF  # a new random base
        with caplog.at_level(logging.INFO, logger="gateway.media"):
            call.web.clear()
            await call.play(0.8, freq=700.0)
        assert call.web.heard(700.0, last=0.5)
        assert any(f"new source SSRC {call.phone.ssrc:08x}" in r.getMessage() for r in caplog.records), [
            r.getMessage() for r in caplog.records
        ]
    finally:
        await call.close()
