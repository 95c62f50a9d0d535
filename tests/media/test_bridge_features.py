"""DTMF both ways, SIP INFO bodies, hold and resume from either side, early media then the answer from
another source, and teardown that leaks nothing over many calls."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest

import sdp
from gateway.media.bridge import BridgeError
from gateway.media.codecs.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent
from gateway.media.events import DtmfReceived, Leg
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import RtpPortAllocator
from peers.webpeer import send_web_dtmf
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, RecordingPeer, allocator


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


def phone_digits(call: Call) -> list[str]:
    receiver = DtmfReceiver(8000)
    digits = []
    for packet in call.phone.packets:
        if packet.payload_type == 101:
            digits += [d.digit for d in receiver.feed(packet.timestamp, packet.payload)]
    return digits


async def phone_sends_dtmf(call: Call, digit: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    phone = call.phone
    for packet in DtmfSender(8000).packets(digit, phone.timestamp, 120):
        delay = start + packet.offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        rtp = RtpPacket(101, phone.sequence, packet.timestamp, phone.ssrc, packet.payload, packet.marker)
        phone.sequence = (phone.sequence + 1) & 0xFFFF
        phone.send_raw(rtp.serialize())
    phone.timestamp = (phone.timestamp + 960) & 0xFFFF_FFFF


async def test_rfc4733_from_browser_reaches_the_phone(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        for digit in "5#":
            await send_web_dtmf(call.web, digit, 126)
        await asyncio.sleep(0.2)
        assert [(e.leg, e.digit) for e in call.of_type(DtmfReceived)] == [(Leg.WEB, "5"), (Leg.WEB, "#")]
        assert call.of_type(DtmfReceived)[0].duration_ms == 100
        assert phone_digits(call) == ["5", "#"]
        events = [TelephoneEvent.parse(p.payload) for p in call.phone.packets if p.payload_type == 101]
        assert max(e.duration for e in events) == 800  # 100 ms at 8000 Hz
    finally:
        await call.close()


async def test_rfc4733_from_phone_reaches_the_browser(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(0.2)
        for digit in "19":
            await phone_sends_dtmf(call, digit)
        await asyncio.sleep(0.2)
        assert [(e.leg, e.digit) for e in call.of_type(DtmfReceived)] == [(Leg.SIP, "1"), (Leg.SIP, "9")]
        assert [d.digit for d in call.web.events] == ["1", "9"]
        assert {p.payload_type for p in call.web.event_packets} == {126}
        assert len({p.ssrc for p in call.web.event_packets} | call.web.ssrcs) == 1  # same SSRC as audio
    finally:
        await call.close()


async def test_bridge_sends_digits_both_ways_and_plays_info_bodies(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await call.bridge.send_dtmf("12", to="sip")
        await call.bridge.send_dtmf("*", to=Leg.WEB)
        await call.bridge.dtmf_from_info("application/dtmf-relay", "Signal=7\r\nDuration=160\r\n")
        await asyncio.sleep(0.1)
        assert phone_digits(call) == ["1", "2"]
        assert [(d.digit, d.duration_ms) for d in call.web.events] == [("*", 100), ("7", 160)]
        content_type, body = call.bridge.info_body(DtmfReceived(Leg.WEB, "4", 120))
        assert content_type == "application/dtmf-relay" and body == "Signal=4\r\nDuration=120\r\n"
    finally:
        await call.close()


async def test_hold_from_the_pbx_stops_browser_audio_to_it_and_resumes(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(0.5)
        assert call.phone.heard(WEB_TONE)
        answer = sdp.parse(
            await call.bridge.update_from_sip(call.phone_offer(direction=sdp.Direction.SENDONLY, version=2))
        )
        assert answer.direction_for(0) is sdp.Direction.RECVONLY
        await asyncio.sleep(0.1)
        before = call.phone.frames
        call.web.clear()
        await call.play(1.0, freq=800)  # music on hold from the PBX still reaches the browser
        assert call.phone.frames == before  # nothing to the held phone
        assert call.web.heard(800, last=0.6)
        held = len(call.phone.packets)
        await call.bridge.update_from_sip(call.phone_offer(version=3))
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(0.8)
        assert call.phone.heard(WEB_TONE)
        # the browser's packets of the held second were not sent: no gap for the phone to count lost
        last, first = call.phone.packets[held - 1], call.phone.packets[held]
        assert (first.sequence_number - last.sequence_number) % 65536 == 1, (last, first)
    finally:
        await call.close()


async def test_hold_from_the_browser_stops_phone_audio_to_it_and_resumes(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(0.4)
        call.web.transceiver.direction = "sendonly"
        answer = sdp.parse(await call.bridge.update_from_web(await call.web.offer()))
        await call.web.accept(sdp.write(answer))
        assert answer.direction_for(0) is sdp.Direction.RECVONLY
        await asyncio.sleep(0.1)
        received = len(call.web.payloads)
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(0.8)
        assert len(call.web.payloads) == received  # nothing to the held browser
        assert call.phone.heard(WEB_TONE)  # the browser still sends
        call.web.transceiver.direction = "sendrecv"
        answer = sdp.parse(await call.bridge.update_from_web(await call.web.offer()))
        await call.web.accept(sdp.write(answer))
        assert answer.direction_for(0) is sdp.Direction.SENDRECV
        call.web.clear()
        await call.play(0.8)
        assert call.web.heard(SIP_TONE, last=0.5)
        # the phone's packets of the held 0.8 s were not sent: no gap for the browser to count lost
        last, first = call.web.seqs[received - 1], call.web.seqs[received]
        assert (first - last) % 65536 == 1, (last, first)
    finally:
        await call.close()


@pytest.mark.parametrize("pbx_calls", [False, True], ids=["browser-called", "pbx-called"])
async def test_web_users_hold_reoffers_sendonly_and_stops_both_directions(
    ports: RtpPortAllocator, pbx_calls: bool
) -> None:
    call = Call(ports)
    try:
        await (call.pbx_calls() if pbx_calls else call.browser_calls())
        await call.connected()
        await call.play(0.4)
        with pytest.raises(BridgeError, match="without a re-offer"):
            await call.bridge.answer_to_reoffer("v=0")
        text = await call.bridge.reoffer_to_sip(hold=True)
        offer = sdp.parse(text)
        assert offer.direction_for(0) is sdp.Direction.SENDONLY and call.bridge.awaiting_reanswer
        assert not call.bridge.local_hold  # nothing changes before the answer
        await call.bridge.answer_to_reoffer(call.phone_answer(offer, call.phone))
        assert call.bridge.local_hold and not call.bridge.awaiting_reanswer
        await asyncio.sleep(0.1)
        frames, received = call.phone.frames, len(call.web.payloads)
        await call.play(0.8)
        assert call.phone.frames == frames, "the browser's audio reached the held phone"
        assert len(call.web.payloads) == received, "the held phone's audio reached the browser"
        # The SIP party's re-INVITE meanwhile: our answer keeps the hold, and our o= line (RFC 3264 §8).
        answer = sdp.parse(await call.bridge.update_from_sip(call.phone_offer(version=7)))
        assert answer.direction_for(0) is sdp.Direction.SENDONLY and call.bridge.local_hold
        assert (answer.origin.session_id, answer.origin.session_version) == (
            offer.origin.session_id,
            offer.origin.session_version + 1,
        )

        resume = sdp.parse(await call.bridge.reoffer_to_sip(hold=False))
        assert resume.direction_for(0) is sdp.Direction.SENDRECV
        assert resume.origin.session_version == offer.origin.session_version + 2
        assert resume.origin.session_id == offer.origin.session_id
        await call.bridge.answer_to_reoffer(call.phone_answer(resume, call.phone))
        assert not call.bridge.local_hold
        call.web.clear()
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(0.8)
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
    finally:
        await call.close()


def payload_names(offer: sdp.SessionDescription) -> list[str]:
    return [f"{c.name}/{c.clock_rate}" for c in offer.media[0].codecs]


@pytest.mark.parametrize("sip_codec", ["PCMU", "PCMA"])
async def test_a_late_offer_offers_every_sip_codec_and_the_ack_answer_carries_audio(
    ports: RtpPortAllocator, sip_codec: str
) -> None:
    call = Call(ports, sip_codec=sip_codec, phone_payload_type=0 if sip_codec == "PCMU" else 8,
                sip_codecs=("PCMU", "PCMA"))  # fmt: skip
    try:
        offer = await call.pbx_calls_late()
        assert payload_names(offer) == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]
        assert offer.direction_for(0) is sdp.Direction.SENDRECV and not call.bridge.awaiting_reanswer
        await call.connected()
        await call.play(0.8)
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
    finally:
        await call.close()


async def test_an_offerless_reinvite_gets_a_full_sendrecv_offer_that_resumes_the_call(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports, sip_codec="PCMA", phone_payload_type=8, sip_codecs=("PCMU", "PCMA", "G722"))
    try:
        await call.pbx_calls()
        await call.connected()
        held = sdp.parse(
            await call.bridge.update_from_sip(call.phone_offer(direction=sdp.Direction.SENDONLY, version=2))
        )
        assert held.direction_for(0) is sdp.Direction.RECVONLY
        offer = sdp.parse(await call.bridge.reoffer_to_sip(hold=False, full=True))
        # Every codec, the one in use first, sendrecv, our o= line one version on (RFC 3264 §8).
        assert payload_names(offer) == ["PCMA/8000", "PCMU/8000", "G722/8000", "telephone-event/8000"]
        assert offer.direction_for(0) is sdp.Direction.SENDRECV
        assert (offer.origin.session_id, offer.origin.session_version) == (
            held.origin.session_id,
            held.origin.session_version + 1,
        )
        await call.bridge.answer_to_reoffer(call.phone_answer(offer, call.phone))
        call.web.clear()
        await call.play(0.8)
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
        # A re-offer the ACK never answered leaves the session as it was.
        await call.bridge.reoffer_to_sip(hold=False, full=True)
        call.bridge.drop_reoffer()
        assert not call.bridge.awaiting_reanswer
        call.web.clear()
        await call.play(0.5)
        assert call.web.heard(SIP_TONE, last=0.3)
    finally:
        await call.close()


async def test_reoffer_needs_an_active_bridge(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        with pytest.raises(BridgeError, match="reoffer_to_sip"):
            await call.bridge.reoffer_to_sip(hold=True)
    finally:
        await call.close()


async def test_early_media_then_answer_from_another_source_stays_continuous(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    early = RecordingPeer()
    try:
        offer, web_answer = await call.early_media(early)
        await call.play(0.8, freq=800, peer=early)
        assert call.web.heard(800, last=0.5)
        assert early.heard(WEB_TONE)
        again = await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))  # 200, new port, SSRC
        assert again == web_answer
        await call.play(0.8)
        assert call.web.heard(SIP_TONE, last=0.5)
        assert call.phone.heard(WEB_TONE)
        assert len(call.web.ssrcs) == 1  # one SSRC towards the browser throughout
        gaps = [(b - a) & 0xFFFF for a, b in zip(call.web.seqs, call.web.seqs[1:], strict=False)]
        assert set(gaps) == {1}, gaps  # consecutive sequence numbers: no SRTP replay drop, no jump
        assert call.bridge.stats().sip_to_web.lost == 0
    finally:
        early.close()
        await call.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_teardown_leaks_no_sockets_ports_or_tasks(ports: RtpPortAllocator) -> None:
    async def one_call(i: int) -> None:
        call = Call(ports, call_id=f"leak{i}")
        await call.browser_calls()
        await call.connected()
        await call.play(0.1)
        await call.close()
        await call.close()  # idempotent

    await one_call(-1)  # warm up lazily created things (executor threads, ...)
    await asyncio.sleep(0.2)
    gc.collect()
    fds, tasks, threads = _fds(), len(asyncio.all_tasks()), threading.active_count()
    for i in range(5):
        await one_call(i)
    for i in range(150):
        call = Call(ports, call_id=f"half{i}")
        await call.bridge.offer_to_sip(await call.web.offer())
        await call.close()
    await asyncio.sleep(0.3)
    gc.collect()
    assert not ports.held
    assert _fds() <= fds + 2, (fds, _fds())
    assert len(asyncio.all_tasks()) <= tasks, asyncio.all_tasks()
    assert threading.active_count() <= threads + 2
