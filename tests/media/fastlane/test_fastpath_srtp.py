"""The media fast lane with SDES-SRTP on the SIP leg: an aiortc browser <-> bridge <-> an SRTP phone on
127.0.0.1 (RFC 4568 keys in the SDP, RFC 3711 on the wire). The engine links the call with the SIP leg's
libsrtp sessions and carries the audio both ways (tones checked on each side, the engine's forwarded
counters); a re-INVITE with new keys relinks it with the new sessions (the old ones stay alive until the
engine has let go of them) and the audio goes on through the engine; DTMF and RTCP that Python sends
while linked go through the engine's sessions; SRTP the phone tampers with is dropped and counted."""

from __future__ import annotations

import array
import asyncio
import dataclasses
import logging

import pytest

import sdp
from gateway.media.codecs import codec_choice
from gateway.media.events import DtmfReceived
from gateway.media.fastlane.engine import SerializedSrtp
from gateway.media.fastlane.native import SIP_DROPPED
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.rtp.srtp import SdesSrtp
from peers.audio import RATE, detect_tone
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator
from tests.media.fastlane.test_fastpath import counters, errors_logged, linked, require_fast_lane, until

TO_SIP, TO_WEB = 1, 2  # indexes into Link.counters()


@pytest.fixture
def ports() -> RtpPortAllocator:
    require_fast_lane()
    return allocator(36000, 36999)


def srtp_call(ports: RtpPortAllocator) -> Call:
    """A call whose bridge offers and takes SDES on the SIP leg (its phone gets its keys from the SDP)."""
    return Call(ports, sip_srtp="optional", offer_sdes=True, call_id="sdes")


def phone_keys(call: Call, description: sdp.SessionDescription, ours: sdp.Crypto) -> None:
    """The phone protects with ``ours`` and checks with the gateway's key from ``description``."""
    (theirs,) = description.media[0].cryptos
    call.phone.srtp = SdesSrtp(ours, theirs)


async def browser_calls_an_srtp_phone(call: Call) -> None:
    await call.phone.start()
    offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
    call.bridge_address = codec_choice.remote_rtp(offer, 0)[0]
    call.phone.remote = call.bridge_address
    ours = sdp.Crypto.new(offer.media[0].cryptos[0].tag)
    phone_keys(call, offer, ours)
    transport = sdp.PlainTransport("127.0.0.1", call.phone.address[1], crypto=ours)
    answer = sdp.answer(offer, codecs=["PCMU"], transport=transport)
    origin = dataclasses.replace(answer.origin, session_id="4242")
    await call.web.accept(
        await call.bridge.answer_from_sip(sdp.write(dataclasses.replace(answer, origin=origin)))
    )


async def phone_reinvites_with_new_keys(call: Call, version: int) -> None:
    """The phone's re-offer carries a new key; the bridge's answer has a new one of its own."""
    ours = sdp.Crypto.new()
    offer = codec_choice.plain_offer(
        [codec_choice.known("PCMU")], address="127.0.0.1", port=call.phone.address[1], telephone_event=True,
        session_id="4242", version=version, crypto=ours,
    )  # fmt: skip
    answer = sdp.parse(await call.bridge.update_from_sip(sdp.write(offer)))
    phone_keys(call, answer, ours)


def heard_lately(pcm: array.array[int], freq: float, seconds: float = 0.8) -> bool:
    return detect_tone(pcm[-round(seconds * RATE) :], RATE, freq)


async def tone_both_ways_through_the_engine(call: Call) -> None:
    before = counters(call)
    frames = call.phone.frames
    await call.play(1.0)  # 50 frames from the phone; the browser's tone runs all along
    assert call.web.heard(SIP_TONE, last=0.8) and not call.web.heard(WEB_TONE, last=0.8)
    assert heard_lately(call.phone.pcm, WEB_TONE) and not heard_lately(call.phone.pcm, SIP_TONE)
    after = counters(call)
    assert after[TO_WEB] - before[TO_WEB] >= 40 and after[TO_SIP] - before[TO_SIP] >= 40, (before, after)
    assert call.phone.frames - frames >= 40 and not call.phone.other  # every packet authentic
    assert after[SIP_DROPPED] == 0 and after[3:5] == (0, 0)  # no drop, no send or codec error


async def test_sdes_sip_leg_is_linked_and_carries_audio_both_ways_across_a_rekeying_reinvite(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.media")
    call = srtp_call(ports)
    try:
        await browser_calls_an_srtp_phone(call)
        await call.connected()
        await linked(call)
        endpoint = call.bridge._sip.endpoint
        assert endpoint is not None and isinstance(endpoint.srtp, SdesSrtp)
        first_link, first_srtp = call.link, endpoint.srtp
        assert any("fast lane linked" in m and "SIP leg SRTP" in m for m in caplog.messages)
        assert isinstance(endpoint._crypto, SerializedSrtp)  # Python's uses go through the engine
        await tone_both_ways_through_the_engine(call)

        await phone_reinvites_with_new_keys(call, 2)
        assert endpoint.srtp is not first_srtp and first_link is not None and first_link.native.closed
        await linked(call)
        assert call.link is not first_link
        assert isinstance(endpoint._crypto, SerializedSrtp) and endpoint._crypto.original is endpoint.srtp
        assert any("SRTP keys changed" in m for m in caplog.messages)
        await asyncio.sleep(0.3)  # what the browser sent before the phone had our new key is gone
        call.phone.other.clear()
        await tone_both_ways_through_the_engine(call)

        # DTMF the bridge sends (Python, through the engine's sequence numbers and SIP-leg session)
        await call.bridge.send_dtmf("5", "sip", duration_ms=60)
        await until(lambda: any(p.payload_type == 101 for p in call.phone.packets), 2.0, "the digit")
        assert not call.phone.other
        await asyncio.sleep(0.1)
        assert call.of_type(DtmfReceived) == [] and errors_logged(caplog) == []
    finally:
        await call.close()
    assert endpoint._crypto is endpoint.srtp  # unlinked: the endpoint runs its own sessions again


async def test_tampered_srtp_from_the_phone_is_dropped_by_the_engine_and_counted(
    ports: RtpPortAllocator,
) -> None:
    call = srtp_call(ports)
    try:
        await browser_calls_an_srtp_phone(call)
        await call.connected()
        await linked(call)
        await call.play(0.4)  # the lane to the browser is armed once the phone's stream is known
        good, phone = call.phone, call.phone.srtp

        class Tamper:
            def protect(self, packet: bytes) -> bytes:
                data = bytearray(phone.protect(packet))
                data[-11] ^= 0x01  # the last payload octet: the tag no longer matches
                return bytes(data)

            def unprotect(self, packet: bytes) -> bytes:
                return bytes(phone.unprotect(packet))

        good.srtp = Tamper()
        received = len(call.web.payloads)
        await call.play(0.2)
        await asyncio.sleep(0.1)
        assert counters(call)[SIP_DROPPED] >= 9 and len(call.web.payloads) == received
        assert call.bridge.fast_lane is not None and call.bridge.fast_lane.sip_dropped() >= 9
        good.srtp = phone
        await call.play(0.6)
        assert call.web.heard(SIP_TONE, last=0.4) and len(call.web.payloads) - received >= 25
    finally:
        await call.close()
