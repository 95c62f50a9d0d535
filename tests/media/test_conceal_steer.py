"""A G.711 phone heard by a browser that has Opus too (codecs.g711_to_web, gateway/media/conceal_steer.py):
a real bridge between an aiortc browser and a plain RTP phone whose packets are lost on the way in.

The browser is answered PCMU then Opus and sends PCMU; what it is sent follows the phone leg's losses:
single lost packets (random loss) are concealed by the gateway, which then sends Opus; a clean leg or
losses in bursts stay PCMU, passed through for the browser's own concealment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import sdp
from gateway.media import fastlane
from gateway.media.events import CodecChosen, Leg
from peers.binaries import in_ci, unavailable
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, RecordingPeer, allocator

PCMU = 0


class LossyPhone(RecordingPeer):
    """A phone whose ``lost(index)`` packets never arrive (their numbers are used all the same)."""

    def __init__(self, lost: Callable[[int], bool], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lost, self._index = lost, 0

    def send_payload(self, payload: bytes, samples: int, *, marker: bool = False, remote: Any = None) -> None:
        index, self._index = self._index, self._index + 1
        if self._lost(index):
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF
            return
        super().send_payload(payload, samples, marker=marker, remote=remote)


def every_twentieth(index: int) -> bool:  # 5 % random-like loss: single packets
    return index % 20 == 10


def bursts(index: int) -> bool:  # 5 % in 100 ms bursts: five packets in every hundred
    return index % 100 >= 95


async def phone_call(
    lost: Callable[[int], bool],
    seconds: float,
    *,
    web_codecs: tuple[str, ...] = ("opus", "PCMU"),
    **settings: Any,
) -> tuple[Call, str]:
    """The browser (offering ``web_codecs``: Opus and PCMU) calls the lossy phone, which plays for
    ``seconds``: the call (to close) and the browser's answer."""
    call = Call(allocator(), web_codecs=web_codecs, **settings)
    call.phone = LossyPhone(lost)
    await call.phone.start()
    offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
    call.phone.remote = (offer.connection.address if offer.connection else "", offer.media[0].port)
    answer = await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))
    await call.web.accept(answer)
    await call.connected()
    await call.play(seconds)
    return call, answer


def opus_type(answer: str) -> int:
    return next(c.payload_type for c in sdp.parse(answer).media[0].codecs if c.name == "opus")


def received_types(call: Call) -> list[int]:
    """The payload types of the phone's audio at the browser, in order, one per change."""
    kinds: list[int] = []
    for payload_type, _ in call.web.payloads:
        if not kinds or kinds[-1] != payload_type:
            kinds.append(payload_type)
    return kinds


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "python-path"])
async def test_random_loss_on_the_phones_leg_is_concealed_by_the_gateway_in_opus(fast: bool) -> None:
    if fast and not fastlane.available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("gateway.media.fastlane._fastlane is not built")
    settings: dict[str, Any] = {} if fast else {"fast_lane": None}
    call, answer = await phone_call(every_twentieth, 5.0, **settings)
    try:
        names = [c.name for c in sdp.parse(answer).media[0].codecs if not c.is_telephone_event]
        assert names[:2] == ["PCMU", "opus"], answer  # the browser sends PCMU; Opus is ours to send
        assert received_types(call) == [PCMU, opus_type(answer)]  # passed through, then transcoded
        chosen = call.of_type(CodecChosen)
        assert [(c.web, c.transcoding) for c in chosen] == [("PCMU/8000", False), ("opus/48000", True)]
        assert call.web.heard(SIP_TONE, last=1.0) and call.phone.heard(WEB_TONE)
        stats = call.bridge.stats()
        assert stats.sip_to_web.lost >= 10 and stats.sip_to_web.transcoded > 0 and stats.transcoding
    finally:
        await call.close()


async def test_losses_in_bursts_stay_with_the_browser() -> None:
    call, _answer = await phone_call(bursts, 5.0)
    try:
        assert received_types(call) == [PCMU]
        assert call.bridge.stats().sip_to_web.lost >= 10  # lost all the same: left to the browser's NetEq
        assert call.web.heard(SIP_TONE, last=1.0)
    finally:
        await call.close()


async def test_forward_and_transcode_fix_the_choice() -> None:
    call, answer = await phone_call(every_twentieth, 3.5, g711_to_web="forward")
    try:
        names = [c.name for c in sdp.parse(answer).media[0].codecs if not c.is_telephone_event]
        assert names == ["PCMU"] and received_types(call) == [PCMU]
    finally:
        await call.close()
    call, answer = await phone_call(lambda index: False, 1.5, g711_to_web="transcode")
    try:
        assert received_types(call) == [opus_type(answer)]  # a clean leg, Opus from the first packet
        assert call.web.heard(SIP_TONE, last=1.0)
    finally:
        await call.close()


async def test_dtmf_to_the_browser_goes_at_the_clock_of_the_opus_it_is_sent() -> None:
    """A digit the gateway sends the browser (a SIP INFO from the PBX) while the phone's audio goes to it
    as Opus: in telephone-event/48000, the audio's clock (RFC 4733 §2.1), not the PCMU's 8 kHz one."""
    call, answer = await phone_call(every_twentieth, 5.0, web_codecs=("opus", "PCMU", "telephone-event"))
    try:
        assert received_types(call)[-1] == opus_type(answer)  # the gateway conceals: Opus
        codecs = sdp.parse(answer).media[0].codecs
        events = {c.clock_rate: c.payload_type for c in codecs if c.is_telephone_event}
        assert set(events) == {8000, 48000}, answer
        await call.bridge.dtmf_from_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
        assert [d.digit for d in call.web.events] == ["5"]
        assert {p.payload_type for p in call.web.event_packets} == {events[48000]}
    finally:
        await call.close()


async def test_a_three_way_mix_sends_the_browser_its_own_codec_meanwhile() -> None:
    """A call whose phone's audio the browser gets as Opus, lent to a three-way mix: the mixer sends the
    browser its own codec (PCMU), so the path to the browser is PCMU again meanwhile (the call says so, a
    digit goes at PCMU's clock); back from the mix, the gateway sends Opus again."""
    call, answer = await phone_call(every_twentieth, 5.0, web_codecs=("opus", "PCMU", "telephone-event"))
    try:
        assert received_types(call)[-1] == opus_type(answer)
        codecs = sdp.parse(answer).media[0].codecs
        events = {c.clock_rate: c.payload_type for c in codecs if c.is_telephone_event}
        call.bridge.lend_to_mix(web=None, sip=None)
        assert call.bridge.mix_codec(Leg.WEB) == "pcmu"
        for index in range(10):
            call.bridge.send_mixed(Leg.WEB, b"\xff" * 160, 160 * index)
            await asyncio.sleep(0.02)
        assert received_types(call)[-1] == PCMU
        assert call.of_type(CodecChosen)[-1].web == "PCMU/8000"
        await call.bridge.send_dtmf("7", Leg.WEB)
        assert [d.digit for d in call.web.events] == ["7"]
        assert {p.payload_type for p in call.web.event_packets} == {events[8000]}
        call.bridge.end_mix()
        await call.play(1.0)
        assert received_types(call)[-1] == opus_type(answer)
        assert call.of_type(CodecChosen)[-1].web == "opus/48000"
    finally:
        await call.close()
