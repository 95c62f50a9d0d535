"""The media fast lane (gateway/media/fastlane/, _fastlane.c) end to end: an aiortc browser <-> bridge <->
a plain RTP phone on 127.0.0.1, with the native engine forwarding steady pass-through RTP.

Checks what the peers see (tones, sequence numbers, digits) and what the bridge counts (its statistics,
the RTP senders' counters for RTCP, the engine's forwarded counters), through DTMF from both sides and
Python, early media then the answer from another source, hold and resume, garbage on the SIP port, calls
sharing the engine, ICE consent on the linked socket, and teardown of many calls (no fd, thread or engine
left behind); then calls the engine transcodes (Opus <-> PCMU/PCMA: timestamps, DTMF, a source switch) and
one it leaves to the Python path (G.722). ``CI=true`` fails instead of skipping when the extension was not built.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import random
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioice.ice
import pytest

import sdp
from gateway.media import fastlane
from gateway.media.bridge import BridgeState
from gateway.media.codecs import opus_settings
from gateway.media.events import CodecChosen, DtmfReceived, IceFailed, Leg
from gateway.media.fastlane import native
from gateway.media.fastlane.engine import FastLink
from gateway.media.fastlane.native import load_codecs
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks
from gateway.media.webrtc.web_leg_state import WebLegState
from peers.binaries import in_ci, unavailable
from peers.webpeer import WebPeer, send_web_dtmf
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, RecordingPeer, allocator
from tests.media.test_bridge_features import phone_digits, phone_sends_dtmf

DROPPED, TO_SIP, TO_WEB = 0, 1, 2  # indexes into Link.counters()


def require_fast_lane() -> None:
    """CI must have built the extension (a missing build would silently test only the Python path)."""
    if fastlane.available():
        return
    unavailable("gateway.media.fastlane._fastlane is not built (pip install -e . with a C compiler)")


@pytest.fixture
def ports() -> RtpPortAllocator:
    require_fast_lane()
    return allocator()


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.01)


async def linked(call: Call, timeout: float = 5.0) -> None:
    await until(lambda: call.link is not None, timeout, "the fast lane to link")


def counters(call: Call) -> tuple[int, int, int, int, int, int]:
    fast = call.link
    assert fast is not None, "the fast lane is not linked"
    return fast.native.counters()


def gaps(seqs: list[int]) -> set[int]:
    return {(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)}


def contiguous(seqs: list[int]) -> bool:
    """The sequence numbers (any order) are one run with no duplicates and no hole (mod 2^16)."""
    if not seqs:
        return False
    relative = sorted((s - seqs[0] + 0x8000) & 0xFFFF for s in seqs)
    return relative == list(range(relative[0], relative[0] + len(seqs)))


def browser_packets_sent(call: Call) -> int:
    return int(call.web.transceiver.sender._RTCRtpSender__packet_count)  # type: ignore[attr-defined]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_native_module_is_built_in_ci() -> None:
    if in_ci():
        assert fastlane.available(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
    elif not fastlane.available():
        unavailable("gateway.media.fastlane._fastlane is not built")


async def test_pcmu_pass_through_is_forwarded_natively_and_accounted(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        assert call.bridge.settings.fast_lane is not None
        await call.play(1.0)  # 50 frames from the phone
        assert call.web.heard(SIP_TONE, last=0.8) and not call.web.heard(WEB_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE) and not call.phone.heard(SIP_TONE)
        _, to_sip, to_web, errors_to_sip, errors_to_web, _ = counters(call)
        assert to_sip >= 40 and to_web >= 40, counters(call)  # the engine, not Python, carried them
        assert errors_to_sip == errors_to_web == 0
        # the browser stops; then everything sent has arrived and been accounted
        call.web.transceiver.sender.replaceTrack(None)
        await asyncio.sleep(0.3)
        browser_sent = browser_packets_sent(call)
        stats = call.bridge.stats()
        assert call.link is not None
        assert stats.sip_to_web.received == stats.sip_to_web.forwarded == call.phone.sent == 50, stats
        assert stats.sip_to_web.lost == 0 and stats.sip_to_web.dropped == 0
        assert len(call.web.payloads) == 50
        assert stats.web_to_sip.received == stats.web_to_sip.forwarded == browser_sent, (stats, browser_sent)
        assert stats.web_to_sip.lost == 0 and stats.web_to_sip.dropped == 0
        assert call.phone.frames == browser_sent
        assert stats.web_dropped == 0
        # the senders' counters (RTCP sender reports) include what the engine sent on their SSRC
        endpoint = call.bridge._sip.endpoint
        assert endpoint is not None
        assert endpoint.packets_sent == call.phone.frames, (endpoint.packets_sent, call.phone.frames)
        assert endpoint.octets_sent == 160 * call.phone.frames
        direct = call.bridge._web.direct_sender
        assert direct.packets_sent == len(call.web.payloads) == 50
        assert direct.octets_sent == 160 * 50
        assert {p.ssrc for p in call.phone.packets} == {endpoint.ssrc}
        assert gaps([p.sequence_number for p in call.phone.packets]) == {1}
        assert call.web.ssrcs == {direct.ssrc} and gaps(call.web.seqs) == {1}
        # pass-through stays byte for byte
        assert all(payload in call.phone.sent_payloads for _, payload in call.web.payloads)
        assert not errors_logged(caplog)
    finally:
        await call.close()
    assert call.link is None and call.pool is not None and call.pool.engines == []


async def test_consent_checks_see_the_browsers_media_between_the_engines_syncs(
    ports: RtpPortAllocator,
) -> None:
    """The consent checks' media count (DirectReceiver.media_progress) grows with what the engine forwards
    although nothing syncs (the tick is every 5 s): a check goes out every 5 s, not every second."""
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        receiver = call.bridge._web.direct_receiver
        progress, synced = receiver.media_progress(), receiver.packets_received()
        await call.play(0.6)
        assert receiver.media_progress() >= progress + 20
        assert receiver.packets_received() - synced < receiver.media_progress() - progress  # not synced
    finally:
        await call.close()


async def test_sequence_numbers_stay_continuous_while_python_and_the_engine_both_send(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.4)
        # Python's digits to the phone while the engine forwards the browser's audio to it
        before = counters(call)
        await call.bridge.send_dtmf("12", to=Leg.SIP)
        await call.play(0.2)
        # the browser's digit (telephone-event on its own SSRC: punted, handled by Python)
        await send_web_dtmf(call.web, "5", 126)
        await call.play(0.3)
        middle = counters(call)
        assert middle[TO_SIP] > before[TO_SIP] + 20  # the lane re-armed after the events
        # the phone's digit, then Python's digit to the browser while the engine forwards the phone's tone
        await phone_sends_dtmf(call, "9")
        await asyncio.gather(call.play(0.6), call.bridge.send_dtmf("*", to="web"))
        payloads = len(call.web.payloads)
        call.web.clear()
        await call.play(0.6)
        after = counters(call)
        assert after[TO_WEB] > middle[TO_WEB] + 40 and after[TO_SIP] > middle[TO_SIP] + 40

        assert [(e.leg, e.digit) for e in call.of_type(DtmfReceived)] == [(Leg.WEB, "5"), (Leg.SIP, "9")]
        assert phone_digits(call) == ["1", "2", "5"]
        assert [d.digit for d in call.web.events] == ["9", "*"]
        # the phone: audio (engine) and events (Python) from one SSRC, consecutive in arrival order
        assert {p.payload_type for p in call.phone.packets} == {0, 101}
        assert len({p.ssrc for p in call.phone.packets}) == 1
        seqs = [p.sequence_number for p in call.phone.packets]
        assert gaps(seqs) == {1}, sorted(gaps(seqs))
        assert len(set(seqs)) == len(seqs)
        # the browser: one run of sequence numbers across audio and events (a duplicate would be a
        # replayed SRTP index, dropped by libsrtp: a hole), and it still hears after the digits
        web_seqs = call.web.seqs + [p.sequence_number for p in call.web.event_packets]
        assert contiguous(web_seqs), sorted(gaps(call.web.seqs))
        assert len({p.ssrc for p in call.web.event_packets} | call.web.ssrcs) == 1
        assert len(call.web.payloads) >= payloads + 25
        assert call.web.heard(SIP_TONE, last=0.4)
        assert counters(call)[DROPPED] == 0 and call.bridge.stats().web_dropped == 0
        assert not errors_logged(caplog)
    finally:
        await call.close()


async def test_a_packet_python_takes_late_arms_its_lane_with_its_arrival(ports: RtpPortAllocator) -> None:
    """The engine leaves a direction's first packets to Python when the first is not what the lane was primed
    for (here a payload type the SDP has not: test_the_engine_arms_a_lane_on_its_first_packet has the usual
    case); a Python seconds behind (a burst of calls set up at once) takes them late. The lane it then arms counts from their arrival, not from when Python
    got to them, so the engine takes the next packet at once. Before, its jump check (media time against
    arrival time since the last packet) refused it and handed the direction back to the Python path, and a
    Python that stays behind never let a lane take over: every call of a 500-call burst silent (issue 38)."""
    require_fast_lane()
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        link = call.link
        assert link is not None and not link.native.armed(native.SIP_TO_WEB)  # no packet of the phone yet
        phone, first = call.phone, time.monotonic()
        start = phone.timestamp
        phone.payload_type = 77  # not the primed lane's: Python decides (and drops it)
        phone.send_payload(b"\xff" * 160, 0)
        phone.payload_type = 0
        for _ in range(3):  # the event loop does not run meanwhile: the engine queues them for Python
            phone.send_payload(b"\xff" * 160, 160)
            time.sleep(0.02)
        time.sleep(1.5)  # ... which takes them 1.5 s after they arrived
        await until(lambda: link.native.armed(native.SIP_TO_WEB), what="the lane to the browser to arm")
        assert counters(call)[TO_WEB] == 0  # Python forwarded those three
        # the phone goes on in real time: its next packet's timestamp is as far on as the clock
        phone.timestamp = (start + round((time.monotonic() - first) * 8000)) & 0xFFFF_FFFF
        phone.send_payload(b"\xff" * 160, 160)
        await until(lambda: call.bridge.stats().sip_to_web.received == 4, what="the fourth packet")
        assert counters(call)[TO_WEB] == 1, "the engine refused the packet after the late ones"
        assert link.native.armed(native.SIP_TO_WEB)
    finally:
        await call.close()


async def test_the_engine_arms_a_lane_on_its_first_packet(ports: RtpPortAllocator) -> None:
    """Python primes a direction that has had no packet yet; the engine arms the lane on its first packet
    and forwards while Python is busy (issue 38: 500 calls set up at once left Python seconds behind, and a
    lane armed only once it had handled each direction's first packet: the engine dropped the rest meanwhile,
    and calls were silent). Python then takes the SSRC, the anchors and the SIP side's latch from the lane,
    and re-arms the same lane: the browser gets one stream, numbered and stamped without a step."""
    require_fast_lane()
    call = Call(ports)
    browser = BrowserRtp(call)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        link, phone = call.link, call.phone
        assert link is not None and not link.native.armed(native.SIP_TO_WEB)  # no packet of the phone yet
        for _ in range(10):  # the event loop does not run meanwhile: nothing of Python's
            phone.send_payload(b"\xff" * 160, 160)
            time.sleep(0.02)
        assert link.native.armed(native.SIP_TO_WEB) and link.native.self_arms() == (0, 1)
        assert counters(call)[TO_WEB] == 10  # all forwarded by the engine
        endpoint = call.bridge._sip.endpoint
        assert endpoint is not None and endpoint.latched_address is None
        link.sync()
        assert endpoint.latched_address == phone.address  # as Python latches to a first packet
        assert call.bridge.stats().sip_to_web.received == 10
        assert call.bridge.fast_lane is not None
        call.bridge.fast_lane.fast_rearm()  # Python arms with what it learnt: the engine's lane goes on
        await call.play(0.6)
        assert link.native.armed(native.SIP_TO_WEB) and link.native.disarms()[3:] == (0, 0, 0)
        assert counters(call)[TO_WEB] == call.phone.sent
        await until(lambda: len(browser.packets) >= call.phone.sent, what="the browser to get them all")
        assert len({p[3] for p in browser.packets}) == 1 and gaps([p[1] for p in browser.packets]) == {1}
        steps = ts_steps([p[2] for p in browser.packets])
        assert steps[:9] == [G711_FRAME] * 9, steps  # the ten sent at once: their own timestamps
        assert all(step < 8000 for step in steps), steps  # then the phone's clock: no jump, no step back
        assert call.web.heard(SIP_TONE, last=0.4)
    finally:
        await call.close()


async def test_the_fill_stops_when_the_browsers_first_packet_arms_its_lane(ports: RtpPortAllocator) -> None:
    """A browser silent from the start (the bench's, until every call of a burst is set up): the SIP side
    hears the fill, and the lane to it is primed. The browser's first packet arms it in the engine, which
    forwards the browser's audio at once (Link.self_arms), and the fill stops by its next frame (it asks
    before each)."""
    require_fast_lane()
    call = Call(ports, loss_detect=0.3)
    call.web = WebPeer(WEB_TONE, raw=True)  # sends only what play_raw gives it
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        link = call.link
        assert link is not None
        await until(lambda: call.bridge._fill.active, what="the fill for a silent browser")
        await asyncio.sleep(0.3)
        assert call.bridge._fill.frames_sent >= 10 and not link.native.armed(native.WEB_TO_SIP)
        filled = call.bridge._fill.frames_sent
        playing = call.web.play_raw(1.0)
        await until(
            lambda: link.native.self_arms()[0] == 1, what="the browser's first packet to arm the lane"
        )
        await asyncio.sleep(0.1)  # five frames' time
        # (one frame may have gone out while the first packet was on its way, one after it)
        assert not call.bridge._fill.active and call.bridge._fill.frames_sent <= filled + 2
        await playing
        await until(lambda: link.native.armed(native.WEB_TO_SIP) and call.bridge._web_gone is False,
                    what="the browser's audio back")  # fmt: skip
        assert counters(call)[TO_SIP] >= 48, counters(call)  # the engine forwarded (almost) all 50
        assert call.phone.heard(WEB_TONE)
        fill_then_browser_without_a_step_back(call)
    finally:
        await call.close()


def fill_then_browser_without_a_step_back(call: Call) -> None:
    """The phone's timestamps go on from the fill's to the browser's audio as the clock does: before, the
    browser's first packet mapped to where the fill had begun, a step back by the fill's whole length.
    (Forward by more than a frame where the event loop stalled: the fill's cadence then restarts.)"""
    steps = ts_steps([p.timestamp for p in call.phone.packets])
    assert len(steps) > 60 and all(0 < step < 8000 for step in steps), [s for s in steps if s != 160]


async def test_after_the_fill_the_browsers_audio_goes_on_from_it_on_the_python_path(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports, loss_detect=0.3, fast_lane=None)
    call.web = WebPeer(WEB_TONE, raw=True)  # silent until play_raw
    try:
        await call.browser_calls()
        await call.connected()
        await until(lambda: call.bridge._fill.active, what="the fill for a silent browser")
        await asyncio.sleep(0.5)
        await call.web.play_raw(1.0)
        await until(lambda: call.phone.heard(WEB_TONE), what="the phone to hear the browser")
        assert not call.bridge._fill.active
        fill_then_browser_without_a_step_back(call)
    finally:
        await call.close()


async def test_the_browsers_lane_is_not_primed_after_a_mix_had_its_audio(ports: RtpPortAllocator) -> None:
    """A mix (a three-way call) took the browser's first packets: the path to the SIP side has had none,
    but the web leg's receiver has. Back from the mix the lane is Python's to arm as usual, not primed:
    a primed lane starts its receive statistics afresh, and its sync would overwrite the receiver's
    (the browser's reports would restart from the mix's packets)."""
    require_fast_lane()
    call = Call(ports)
    call.web = WebPeer(WEB_TONE, raw=True)  # sends only what play_raw gives it
    mixed: list[bytes] = []
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        call.bridge.lend_to_mix(web=mixed.append, sip=None)
        await call.web.play_raw(0.5)
        await until(lambda: len(mixed) >= 20, what="the mix to get the browser's audio")
        call.bridge.end_mix()
        await linked(call)
        link, receiver = call.link, call.bridge._web.direct_receiver
        assert link is not None
        await call.web.play_raw(1.0)
        assert link.native.self_arms()[0] == 0, link.native.self_arms()
        await until(lambda: link.native.armed(native.WEB_TO_SIP), what="Python to arm the browser's lane")
        link.sync()
        assert receiver.packets_received() >= 70, receiver.packets_received()  # the mix's 25 and these 50
        assert call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def phone_plays_while_the_engine_stalls(call: Call, link: FastLink) -> None:
    """The engine's thread held from its sockets for 1.5 s (Engine.stall) while the phone sends 1 s of
    audio in real time (50 packets) into its socket."""
    stall = threading.Thread(target=link._engine.native.stall, args=(1.5,))
    stall.start()
    time.sleep(0.05)  # the lock is held: the thread reads nothing more until the stall is over
    for _ in range(50):
        call.phone.send_payload(b"\xff" * 160, 160)
        time.sleep(0.02)
    await asyncio.to_thread(stall.join)


async def test_a_backlog_the_engine_reads_late_keeps_its_lane(ports: RtpPortAllocator) -> None:
    """The engine's thread kept from its sockets for 1.5 s (its lock held, as by a slow drain, or no CPU
    free) reads the phone's packets of that time at once. Timed by the kernel's arrival each is 20 ms after
    the one before: the lane takes them all and stays armed. Before, timed by the late read, the first
    looked like a timestamp jump of 1.5 s: the lane disarmed and left its direction to Python, and every
    lane of a stalled engine did so at once (a 500-call burst lost one engine's 250 calls, issue 38)."""
    require_fast_lane()
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        link = call.link
        assert link is not None
        await call.play(0.6)
        await until(lambda: link.native.armed(native.SIP_TO_WEB), what="the lane to the browser to arm")
        before = counters(call)[TO_WEB]
        await phone_plays_while_the_engine_stalls(call, link)
        await until(lambda: counters(call)[TO_WEB] >= before + 50, what="the engine to forward the backlog")
        assert link.native.armed(native.SIP_TO_WEB), "the backlog disarmed the lane"
    finally:
        await call.close()


async def test_a_backlog_of_a_direction_python_owns_all_reaches_python(ports: RtpPortAllocator) -> None:
    """The same stall before the phone's first packet (the direction is Python's, no lane armed): the
    whole second of backlog goes to Python. The engine drops a direction's packets only when Python has not
    drained for PUNT_WINDOW (0.5 s) of the thread's own time; counted by the packets' arrival, the stall
    would have dropped all but the first half second of them."""
    require_fast_lane()
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        link = call.link
        assert link is not None and not link.native.armed(native.SIP_TO_WEB)  # no packet of the phone yet
        engine = link._engine.native
        drops = engine.queue_drops
        await phone_plays_while_the_engine_stalls(call, link)
        await until(
            lambda: call.bridge.stats().sip_to_web.received >= 50, what="the backlog to reach the bridge"
        )
        assert engine.queue_drops == drops, "the engine dropped the backlog"
    finally:
        await call.close()


async def test_the_fill_for_a_detached_browser_tries_no_link(ports: RtpPortAllocator) -> None:
    """A browser gone to reconnect (its leg closed): the SIP side hears the fill, and the fast lane, which
    has no web leg to link, does not keep trying for a minute (many calls detached at once by a site's
    network blip would each run the retries' timers)."""
    require_fast_lane()
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.bridge.detach_web()
        lane = call.bridge.fast_lane
        assert lane is not None and lane.link is None
        assert call.bridge._fill.active, "no fill for the detached browser"
        assert not lane._pending and lane._retry is None, "link tries scheduled with no web leg"
    finally:
        await call.close()


async def test_early_media_then_answer_from_another_source_rearms_the_lane(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    early = RecordingPeer()
    try:
        offer, web_answer = await call.early_media(early)
        await linked(call)
        await call.play(0.8, freq=800, peer=early)
        assert call.web.heard(800, last=0.5) and early.heard(WEB_TONE)
        at_switch = counters(call)
        assert at_switch[TO_WEB] >= 30, at_switch
        again = await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))  # 200, new port, SSRC
        assert again == web_answer
        await call.play(0.8)
        assert call.web.heard(SIP_TONE, last=0.5)
        assert call.phone.heard(WEB_TONE)
        after = counters(call)
        assert after[TO_WEB] >= at_switch[TO_WEB] + 30, (at_switch, after)  # the new source was re-armed
        assert after[TO_SIP] >= at_switch[TO_SIP] + 30, (at_switch, after)  # to the new address
        assert len(call.web.ssrcs) == 1
        assert gaps(call.web.seqs) == {1}
        stats = call.bridge.stats()
        assert stats.sip_to_web.lost == 0 and stats.sip_to_web.forwarded == early.sent + call.phone.sent
    finally:
        early.close()
        await call.close()


async def test_pbx_hold_stops_the_held_direction_and_resume_restarts_it(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.5)
        assert call.phone.heard(WEB_TONE)
        answer = sdp.parse(
            await call.bridge.update_from_sip(call.phone_offer(direction=sdp.Direction.SENDONLY, version=2))
        )
        assert answer.direction_for(0) is sdp.Direction.RECVONLY
        await asyncio.sleep(0.1)
        held, frames = counters(call), call.phone.frames
        call.web.clear()
        await call.play(1.0, freq=800)  # music on hold still reaches the browser
        during = counters(call)
        assert during[TO_SIP] == held[TO_SIP], (held, during)  # nothing towards the held phone
        assert call.phone.frames == frames
        assert during[TO_WEB] >= held[TO_WEB] + 40  # the other direction stays on the engine
        assert call.web.heard(800, last=0.6)
        await call.bridge.update_from_sip(call.phone_offer(version=3))
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(0.8)
        resumed = counters(call)
        assert resumed[TO_SIP] >= during[TO_SIP] + 30, (during, resumed)
        assert call.phone.heard(WEB_TONE)
        assert call.bridge.stats().web_to_sip.lost == 0
    finally:
        await call.close()


async def test_web_users_hold_stops_both_directions_and_resume_restarts_them(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.4)
        offer = sdp.parse(await call.bridge.reoffer_to_sip(hold=True))
        await call.bridge.answer_to_reoffer(call.phone_answer(offer, call.phone))
        assert call.bridge.local_hold
        await asyncio.sleep(0.1)
        held, frames, received = counters(call), call.phone.frames, len(call.web.payloads)
        await call.play(0.8)
        during = counters(call)
        assert during[TO_SIP] == held[TO_SIP] and during[TO_WEB] == held[TO_WEB], (held, during)
        assert call.phone.frames == frames and len(call.web.payloads) == received
        resume = sdp.parse(await call.bridge.reoffer_to_sip(hold=False))
        await call.bridge.answer_to_reoffer(call.phone_answer(resume, call.phone))
        call.web.clear()
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(0.8)
        resumed = counters(call)
        assert resumed[TO_SIP] >= during[TO_SIP] + 30 and resumed[TO_WEB] >= during[TO_WEB] + 30
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE, last=0.5)
    finally:
        await call.close()


async def test_fast_path_off_keeps_everything_on_the_python_path(ports: RtpPortAllocator) -> None:
    call = Call(ports, fast_lane=None)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(1.0)
        assert call.link is None and not call.link_pending and call.bridge.fast_lane is None
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
        stats = call.bridge.stats()
        assert stats.sip_to_web.forwarded == call.phone.sent and stats.web_to_sip.forwarded >= 45
    finally:
        await call.close()


def _rtcp_receiver_report(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)  # RR, no report blocks (RFC 3550 §6.4.2)


async def test_garbage_on_the_sip_port_neither_crashes_nor_stops_forwarding(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    call = Call(ports)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rng = random.Random(4242)
    try:
        stranger.bind(("127.0.0.1", 0))
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.4)
        endpoint = call.bridge._sip.endpoint
        assert endpoint is not None and call.bridge_address is not None
        target = call.bridge_address
        dropped, before = endpoint.dropped, counters(call)
        garbage = [rng.randbytes(n) for n in (1, 2, 11, 12, 13, 172, 1400)]
        garbage += [b"", bytes(2000), b"\x80" + rng.randbytes(40)]
        stray = RtpPacket(0, 1, 1234, 0xBAD55C, bytes(160), False).serialize()
        for _ in range(3):
            for data in [*garbage, _rtcp_receiver_report(0xBAD55C), stray]:
                stranger.sendto(data, target)  # another source: never latched to
            # from the phone's own address: RTCP, and datagrams that are not RTP (version 0, too short)
            call.phone.send_raw(_rtcp_receiver_report(call.phone.ssrc))
            call.phone.send_raw(b"\x00" + rng.randbytes(171))
            call.phone.send_raw(b"\x80\x00\x01")
            await call.play(0.1)
        call.web.clear()
        await call.play(0.8)
        after = counters(call)
        assert after[TO_WEB] >= before[TO_WEB] + 40, (before, after)
        assert after[TO_SIP] >= before[TO_SIP] + 40, (before, after)
        assert endpoint.dropped > dropped  # Python saw the garbage and dropped it
        assert call.web.heard(SIP_TONE, last=0.6) and call.phone.heard(WEB_TONE)
        assert call.bridge.state is BridgeState.ACTIVE and call.link is not None
        assert endpoint.latched_address == call.phone.address
        stats = call.bridge.stats()
        assert stats.sip_to_web.lost == 0
        assert all(payload in call.phone.sent_payloads for _, payload in call.web.payloads)
        assert not errors_logged(caplog)
    finally:
        stranger.close()
        await call.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> tuple[int, int]:
    """Threads of the process, less those of asyncio's default executor: it keeps the workers it started
    (up to its max_workers), and a loaded machine makes two calls use it at once (not a leak)."""
    pooled = sum(1 for t in threading.enumerate() if t.name.startswith("asyncio_"))
    return threading.active_count() - pooled, len(os.listdir("/proc/self/task")) - pooled


async def test_many_calls_leave_no_fd_thread_or_engine_behind(ports: RtpPortAllocator) -> None:
    forwarded: list[int] = []

    async def one_call(i: int) -> None:
        call = Call(ports, call_id=f"fast{i}")
        try:
            await call.browser_calls()
            await call.connected()
            await linked(call)
            # media until the engine forwarded both ways: 0.1 s of it once, then a wait, lost the race at
            # load 16 (the packets all went by before the lanes armed, and none came after)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15.0
            while not (counters(call)[TO_WEB] > 0 and counters(call)[TO_SIP] > 0):
                assert loop.time() < deadline, ("no forwarding", counters(call))
                await call.play(0.1)
            forwarded.append(counters(call)[TO_WEB])
        finally:
            await call.close()
            await call.close()  # idempotent
        assert call.link is None

    await one_call(-1)  # warm up what is created once (executor threads, ...)
    await asyncio.sleep(0.2)
    gc.collect()
    fds, threads = _fds(), _threads()
    for i in range(30):
        await one_call(i)  # Call.close() checks that its engine stopped with its last link
    assert len(forwarded) == 31 and all(forwarded)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while (_fds() > fds or _threads() > threads) and loop.time() < deadline:  # threads end asynchronously
        gc.collect()
        await asyncio.sleep(0.05)
    assert not ports.held
    assert _fds() == fds and _threads() == threads, ((fds, threads), (_fds(), _threads()))


async def test_a_phone_packet_queued_when_the_link_closes_goes_to_the_browser(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    """``FastLink.close`` hands what the engine still queued to the call: a phone packet among it is sent on
    to the browser, on the legs' own paths, restored before that drain. (They were restored after it: the
    browser's sender still held the closed link, which refused the packet - "the link is closed" logged
    with a traceback, the packet lost; seen in example 09's hang-up in CI.)"""
    require_fast_lane()
    caplog.set_level(logging.ERROR)
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.2)
        link = call.link
        assert link is not None
        call.phone.ssrc ^= 0x5A5A5A5A  # a new source: the engine queues it for Python (no lane takes it)
        marked = bytes([0x55]) * 160
        call.phone.send_payload(marked, 160)
        time.sleep(0.1)  # the engine queues it; the event loop does not run, so nothing drains it
        link.close()  # the drain inside hands it to the bridge, which sends it on
        assert errors_logged(caplog) == []
        await until(lambda: any(p == marked for _, p in call.web.payloads), 2.0, "the queued packet heard")
    finally:
        await call.close()


async def test_pass_through_calls_share_an_engine_thread_and_closing_one_leaves_the_others_forwarding(
    ports: RtpPortAllocator,
) -> None:
    pool = fastlane.EnginePool()
    calls = [Call(ports, call_id=f"shared{i}", fast_lane=pool) for i in range(3)]
    try:
        await asyncio.gather(*(c.browser_calls() for c in calls))
        await asyncio.gather(*(c.connected() for c in calls))
        for call in calls:
            await linked(call)
        assert len(pool.engines) == 1, pool.engines  # packed (EnginePool.acquire): one busier thread
        assert pool.links == 3 and pool.engines[0].load == 3
        await asyncio.gather(*(c.play(0.4) for c in calls))
        await calls[1].close()
        assert calls[1].link is None and pool.links == 2
        before = [counters(calls[0]), counters(calls[2])]
        for call in (calls[0], calls[2]):
            call.web.clear()
            call.phone.pcm = type(call.phone.pcm)("h")
        await asyncio.gather(calls[0].play(0.8), calls[2].play(0.8))
        for call, old in zip((calls[0], calls[2]), before, strict=True):
            now = counters(call)
            assert now[TO_WEB] >= old[TO_WEB] + 30 and now[TO_SIP] >= old[TO_SIP] + 30, (old, now)
            assert call.web.heard(SIP_TONE, last=0.5) and call.phone.heard(WEB_TONE)
    finally:
        await asyncio.gather(*(c.close() for c in calls))
    assert pool.engines == []  # each engine stopped with its last link
    pool.close()


def time_stun_requests(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds each aioice STUN request (a consent check, both sides) takes, appended as they end."""
    durations: list[float] = []
    request = aioice.ice.StunProtocol.request

    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return await request(self, *args, **kwargs)
        finally:
            durations.append(time.monotonic() - start)

    monkeypatch.setattr(aioice.ice.StunProtocol, "request", timed)
    return durations


async def test_ice_consent_checks_are_answered_promptly_while_the_engine_reads_the_socket(
    ports: RtpPortAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 7675 consent: aioice sends one STUN request every ~5 s (here ~0.15 s, to be quick) with no
    # retransmission and gives up on it after RETRY_RTO (0.5 s); 6 misses in a row close the connection.
    # Both sides' requests and responses cross the linked web socket: the engine must hand them to
    # aioice at once, or a network round trip plus the wait exceeds 0.5 s and the call drops.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.15)
    durations = time_stun_requests(monkeypatch)
    call = Call(ports, web_rtcp_interval=1.0)  # the browser's RTT needs our reports within the 2.5 s
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        durations.clear()
        before = counters(call)
        await call.play(2.5)
        assert call.link is not None
        after = counters(call)
        assert after[TO_WEB] >= before[TO_WEB] + 100 and after[TO_SIP] >= before[TO_SIP] + 100
        assert not call.of_type(IceFailed) and call.web.pc.connectionState == "connected"
        assert call.bridge._web.state is WebLegState.CONNECTED
        assert len(durations) >= 10  # both sides checked consent all along
        # loopback: ~1 ms each; held by the engine they took up to its 0.5 s poll. The median says which;
        # the max only that none came near RETRY_RTO (a loaded machine can stall one by 150 ms)
        spread = sorted(round(d, 3) for d in durations)
        assert statistics.median(durations) < 0.05 and max(durations) < 0.4, spread
        # SRTCP waits too (up to 10 ms): the bridge's aiortc receiver must take a sender report's arrival,
        # not when it handles it, or its receiver reports' DLSR shrink and the browser's RTCP RTT grows
        # (gateway.media.arrival; test_arrival.py measures it to the millisecond)
        # None: no RR answered an SR yet (SRs go out about once a second, jittered: a loaded run may not
        # have had one answered by now; the browser's tone plays all along, so wait for the first, 5 s)
        rtts: list[float] = []
        for _ in range(50):
            report = await call.web.transceiver.sender.getStats()
            remote = [s for s in report.values() if s.type == "remote-inbound-rtp"]
            rtts = [s.roundTripTime for s in remote if s.roundTripTime is not None]
            if rtts:
                break
            await asyncio.sleep(0.1)
        assert rtts and max(rtts) < 0.2, remote  # ~1 ms on loopback; up to 0.5 s when held
    finally:
        await call.close()


# ----------------------------------------------------------------------------------- transcoded calls

# The browser offers only Opus and the phone answers G.711 (or G.722): the bridge transcodes. The engine
# does Opus <-> PCMU/PCMA itself (``load_codecs()``), stamping its 20 ms output frames as the
# Python path's TimestampMapper + FrameClock do; G.722 stays on the Python path.

OPUS_ONLY = ("opus", "telephone-event")
OPUS_PT = 96  # aiortc's Opus payload type
OPUS_FRAME, G711_FRAME = 960, 160  # RTP timestamp ticks of 20 ms at 48 kHz and 8 kHz


class BrowserRtp:
    """Every RTP packet the "browser" receives (``WebPeer`` keeps no timestamps): a second tap on its
    aiortc receiver that never consumes a packet, so ``WebPeer`` still records and decodes them all."""

    def __init__(self, call: Call) -> None:
        self.packets: list[tuple[int, int, int, int, float]] = []  # pt, seq, timestamp, SSRC, arrival
        self._clock = time.monotonic
        aiortc_hooks.tap_receiver(call.web.transceiver.receiver, self._tap)

    def _tap(self, packet: Any) -> bool:
        seen = (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc, self._clock())
        self.packets.append(seen)
        return False

    def audio(self) -> list[tuple[int, int, int, int, float]]:
        return [p for p in self.packets if p[0] == OPUS_PT]


def ts_steps(timestamps: list[int]) -> list[int]:
    return [(b - a) & 0xFFFF_FFFF for a, b in itertools.pairwise(timestamps)]


def offsets(timestamps: list[int]) -> list[int]:
    """Timestamps relative to the first (mod 2^32)."""
    return [(t - timestamps[0]) & 0xFFFF_FFFF for t in timestamps]


class StampingPeer(RecordingPeer):
    """A phone that also keeps the RTP timestamp of each audio frame it sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_timestamps: list[int] = []

    def send_payload(
        self, payload: bytes, samples: int, *, marker: bool = False, remote: tuple[str, int] | None = None
    ) -> None:
        self.sent_timestamps.append(self.timestamp)
        super().send_payload(payload, samples, marker=marker, remote=remote)


def require_transcoding(*pairs: str) -> None:
    """CI must transcode natively (libopus comes with PyAV's wheel): else the Python path hides it."""
    missing = set(pairs) - load_codecs()
    if missing:
        unavailable(f"the fast lane does not transcode {sorted(missing)} (libopus not found?)")


@pytest.mark.parametrize(("law", "pt"), [("PCMU", 0), ("PCMA", 8)])
async def test_opus_browser_and_g711_phone_are_transcoded_by_the_engine_both_ways(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture, law: str, pt: int
) -> None:
    require_transcoding(f"opus>{law.lower()}", f"{law.lower()}>opus")
    caplog.set_level(logging.ERROR)
    call = Call(ports, web_codecs=OPUS_ONLY, sip_codec=law, phone_payload_type=pt)
    browser = BrowserRtp(call)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        assert call.of_type(CodecChosen) == [CodecChosen("opus/48000", f"{law}/8000", transcoding=True)]
        await call.play(1.0)  # 50 frames from the phone
        assert call.web.heard(SIP_TONE, last=0.8) and not call.web.heard(WEB_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE) and not call.phone.heard(SIP_TONE)
        _, to_sip, to_web, errors_to_sip, errors_to_web, _ = counters(call)
        assert to_sip >= 40 and to_web >= 40, counters(call)  # the engine, not Python, transcoded them
        assert errors_to_sip == errors_to_web == 0  # send and codec errors
        # the browser stops; then everything sent has arrived and been accounted
        call.web.transceiver.sender.replaceTrack(None)
        await asyncio.sleep(0.3)
        browser_sent = browser_packets_sent(call)
        stats = call.bridge.stats()
        assert call.link is not None and stats.transcoding
        assert stats.sip_to_web.received == stats.sip_to_web.transcoded == call.phone.sent == 50, stats
        assert stats.sip_to_web.forwarded == 50 and stats.sip_to_web.lost == stats.sip_to_web.dropped == 0
        assert stats.web_to_sip.received == stats.web_to_sip.transcoded == browser_sent, (stats, browser_sent)
        assert stats.web_to_sip.lost == stats.web_to_sip.dropped == 0 and stats.web_dropped == 0
        # the phone: 20 ms G.711 frames (one per Opus packet but maybe the first, which the Python path
        # decodes while the resampler fills), one SSRC, consecutive sequence numbers, timestamps +160
        endpoint = call.bridge._sip.endpoint
        assert endpoint is not None
        audio = [p for p in call.phone.packets if p.payload_type == pt]
        assert len(audio) == len(call.phone.packets) == stats.web_to_sip.forwarded >= browser_sent - 1
        assert {len(p.payload) for p in audio} == {160}
        assert {p.ssrc for p in audio} == {endpoint.ssrc}
        assert gaps([p.sequence_number for p in audio]) == {1}
        assert set(ts_steps([p.timestamp for p in audio])) == {G711_FRAME}
        assert endpoint.packets_sent == len(audio) and endpoint.octets_sent == 160 * len(audio)
        # the browser: Opus, one SSRC, consecutive sequence numbers, timestamps +960
        received = browser.audio()
        assert len(received) == len(browser.packets) == len(call.web.payloads) == 50
        assert {p[3] for p in received} == {call.bridge._web.direct_sender.ssrc}
        assert gaps([p[1] for p in received]) == {1}
        assert set(ts_steps([p[2] for p in received])) == {OPUS_FRAME}
        assert call.bridge._web.direct_sender.packets_sent == 50
        assert not errors_logged(caplog)
    finally:
        await call.close()
    assert call.link is None and call.pool is not None and call.pool.engines == []


async def _engine_opus_payloads(ports: RtpPortAllocator, complexity: int) -> list[bytes]:
    """The Opus payloads the browser got from the engine for the phone's 1 s tone, encoded at ``complexity``."""
    opus_settings.configure(opus_settings.OpusEncoderSettings(complexity))
    call = Call(ports, web_codecs=OPUS_ONLY)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(1.0)
        assert call.web.heard(SIP_TONE, last=0.8), complexity  # the tone, whatever the complexity
        _, _, to_web, _, errors_to_web, _ = counters(call)
        assert to_web >= 45 and errors_to_web == 0  # encoded by the engine (the first may be Python's)
        return [payload for pt, payload in call.web.payloads if pt == OPUS_PT][-40:]
    finally:
        await call.close()


def _aligned_matches(a: list[bytes], b: list[bytes]) -> int:
    """How many frames of ``a`` equal those of ``b`` at the shift (up to 3 packets) where most do."""
    return max(
        sum(x == y for x, y in zip(a[max(0, s) :], b[max(0, -s) :], strict=False)) for s in range(-3, 4)
    )


async def test_the_engine_encodes_opus_at_the_configured_complexity(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    # media.opus_complexity (gateway/media/codecs/opus_settings.py) reaches the engine's encoders: the same
    # phone tone coded at 0 and at 10 gives other bitstreams (at 10 twice: the same ones), and the
    # cheapest setting still carries the tone to the browser
    require_transcoding("pcmu>opus")
    caplog.set_level(logging.ERROR)
    saved = opus_settings.current()
    try:
        lowest = await _engine_opus_payloads(ports, 0)
        highest = await _engine_opus_payloads(ports, 10)
        again = await _engine_opus_payloads(ports, 10)
    finally:
        opus_settings.configure(saved)
    assert len(lowest) == len(highest) == len(again) == 40
    # The same input coded twice at 10 gives the same frames; on a loaded machine the browser's last 40
    # may start a packet or two apart (or a packet went to Python), so they are compared at the best shift
    same, other = _aligned_matches(highest, again), _aligned_matches(lowest, highest)
    assert same >= 20, f"not deterministic ({same} of 40 alike): the test cannot tell the settings apart"
    assert other < same // 2, (other, same)
    assert not errors_logged(caplog)


async def test_dtmf_both_ways_while_the_engine_transcodes(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    require_transcoding("opus>pcmu", "pcmu>opus")
    caplog.set_level(logging.ERROR)
    call = Call(ports, web_codecs=OPUS_ONLY)
    call.phone = phone = StampingPeer()
    browser = BrowserRtp(call)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        web_side = call.bridge._web_side
        assert web_side is not None and web_side.event is not None
        await call.play(0.4)
        # Python's digits to the phone while the engine transcodes the browser's audio to it
        before = counters(call)
        await call.bridge.send_dtmf("12", to=Leg.SIP)
        await call.play(0.2)
        # the browser's digit (telephone-event/48000 on its own SSRC: punted, handled by Python)
        await send_web_dtmf(call.web, "5", web_side.event.payload_type)
        await call.play(0.3)
        middle = counters(call)
        assert middle[TO_SIP] > before[TO_SIP] + 20, (before, middle)  # re-armed after the events
        # the phone's digit, then Python's digit to the browser while the engine transcodes the phone's tone
        await phone_sends_dtmf(call, "9")
        await asyncio.gather(call.play(0.6), call.bridge.send_dtmf("*", to="web"))
        call.web.clear()
        await call.play(0.6)
        after = counters(call)
        assert after[TO_WEB] > middle[TO_WEB] + 40 and after[TO_SIP] > middle[TO_SIP] + 40, (middle, after)
        assert after[DROPPED] == after[3] == after[4] == 0  # nothing dropped, no send or codec error

        assert [(e.leg, e.digit) for e in call.of_type(DtmfReceived)] == [(Leg.WEB, "5"), (Leg.SIP, "9")]
        assert phone_digits(call) == ["1", "2", "5"]
        assert [d.digit for d in call.web.events] == ["9", "*"]
        # the phone: transcoded audio (engine) and events (Python) on one SSRC, consecutive in arrival order;
        # the browser's audio never paused, so its PCMU timestamps advance by one frame throughout
        assert {p.payload_type for p in call.phone.packets} == {0, 101}
        assert len({p.ssrc for p in call.phone.packets}) == 1
        seqs = [p.sequence_number for p in call.phone.packets]
        assert gaps(seqs) == {1}, sorted(gaps(seqs))
        assert len(set(seqs)) == len(seqs)
        audio = [p.timestamp for p in call.phone.packets if p.payload_type == 0]
        assert set(ts_steps(audio)) == {G711_FRAME}, sorted(set(ts_steps(audio)))
        # the browser: Opus and events on one SSRC and one run of sequence numbers; one Opus frame per
        # frame the phone sent, on the phone's timeline at 48 kHz (+960 each, +6720 across the 140 ms the
        # phone's digit took on its timeline): what TimestampMapper and FrameClock make of it
        web_seqs = [p[1] for p in browser.packets]
        assert contiguous(web_seqs), sorted(gaps(web_seqs))
        assert len({p[3] for p in browser.packets}) == 1
        opus = [p[2] for p in browser.audio()]
        assert len(opus) == phone.sent == len(phone.sent_timestamps)
        assert offsets(opus) == [6 * t for t in offsets(phone.sent_timestamps)]
        assert call.web.heard(SIP_TONE, last=0.4) and call.phone.heard(WEB_TONE)
        assert call.bridge.stats().web_dropped == 0
        assert not errors_logged(caplog)
    finally:
        await call.close()


async def test_g722_phone_stays_on_the_python_path_and_audio_flows_both_ways(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    # the phone speaks G.722 at 16 kHz (peers.audio.G722, FFmpeg's g722) under RTP's 8000 Hz clock
    call = Call(ports, web_codecs=OPUS_ONLY, sip_codec="G722", phone_payload_type=9)
    try:
        await call.browser_calls()
        await call.connected()
        assert call.of_type(CodecChosen) == [CodecChosen("opus/48000", "G722/8000", transcoding=True)]
        assert not {"opus>g722", "g722>opus"} & load_codecs()
        await call.play(1.0)
        # never linked (``_fast_capable`` is False both ways): both sockets stay with asyncio
        assert (
            call.link is None and not call.link_pending and call.pool is not None and call.pool.engines == []
        )
        assert call.web.heard(SIP_TONE, last=0.8) and not call.web.heard(WEB_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE) and not call.phone.heard(SIP_TONE)
        stats = call.bridge.stats()
        assert stats.transcoding
        assert stats.sip_to_web.transcoded == stats.sip_to_web.forwarded == call.phone.sent == 50, stats
        assert stats.web_to_sip.transcoded >= 45 and stats.web_to_sip.lost == stats.sip_to_web.lost == 0
        assert {p.payload_type for p in call.phone.packets} == {9} and call.phone.frames >= 45
        assert set(ts_steps([p.timestamp for p in call.phone.packets])) == {G711_FRAME}  # G.722: 8 kHz clock
        assert not errors_logged(caplog)
    finally:
        await call.close()


async def test_transcoded_timestamps_stay_continuous_across_early_media_then_the_answer(
    ports: RtpPortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    require_transcoding("opus>pcmu", "pcmu>opus")
    caplog.set_level(logging.ERROR)
    call = Call(ports, web_codecs=OPUS_ONLY)
    browser = BrowserRtp(call)
    early = RecordingPeer()
    try:
        offer, web_answer = await call.early_media(early)
        await linked(call)
        await call.play(0.8, freq=800, peer=early)
        assert call.web.heard(800, last=0.5) and early.heard(WEB_TONE)
        at_switch = counters(call)
        assert at_switch[TO_WEB] >= 30 and at_switch[TO_SIP] >= 30, at_switch
        again = await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))  # 200, new port, SSRC
        assert again == web_answer
        call.web.clear()
        await call.play(0.8)
        assert call.web.heard(SIP_TONE, last=0.5) and not call.web.heard(800, last=0.5)
        assert call.phone.heard(WEB_TONE)
        after = counters(call)
        assert after[TO_WEB] >= at_switch[TO_WEB] + 30, (at_switch, after)  # the new source was re-armed
        assert after[TO_SIP] >= at_switch[TO_SIP] + 30, (at_switch, after)  # to the new address
        # the browser: one Opus stream (one SSRC, one run of sequence numbers), timestamps +960 per packet
        # except across the switch, where they advance by the time that passed: no jump, no step back
        assert len({p[3] for p in browser.packets}) == 1 and {p[0] for p in browser.packets} == {OPUS_PT}
        assert gaps([p[1] for p in browser.packets]) == {1}
        assert len(browser.packets) == early.sent + call.phone.sent
        steps = ts_steps([p[2] for p in browser.packets])
        switch = early.sent - 1  # the step from the early peer's last frame to the phone's first
        assert {i for i, step in enumerate(steps) if step != OPUS_FRAME} <= {switch}, steps
        elapsed = browser.packets[switch + 1][4] - browser.packets[switch][4]
        assert abs(steps[switch] / 48000 - elapsed) < 0.06, (steps[switch], elapsed)  # within 3 frames
        # the SIP side: the early peer then the phone received one PCMU stream (the browser never paused)
        first = early.packets[0].sequence_number
        to_sip = sorted(
            early.packets + call.phone.packets, key=lambda p: (p.sequence_number - first) & 0xFFFF
        )
        assert len({p.ssrc for p in to_sip}) == 1 and {p.payload_type for p in to_sip} == {0}
        assert gaps([p.sequence_number for p in to_sip]) == {1}
        assert set(ts_steps([p.timestamp for p in to_sip])) == {G711_FRAME}
        stats = call.bridge.stats()
        assert stats.sip_to_web.lost == 0 and stats.sip_to_web.transcoded == early.sent + call.phone.sent
        assert not errors_logged(caplog)
    finally:
        early.close()
        await call.close()


def test_a_build_older_than_its_sources_is_told(tmp_path: Path) -> None:
    """native.stale_sources: a C source changed after the build (the Python side may then ask the engine for
    what the old build lacks) is named; none when the build is newer, or when no source is beside it."""
    built = tmp_path / "_fastlane.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    source, header = tmp_path / "_fastlane_thread.c", tmp_path / "_fastlane.h"
    source.write_text("")
    header.write_text("")
    os.utime(built, (1000, 1000))
    os.utime(source, (2000, 2000))
    os.utime(header, (500, 500))
    assert native.stale_sources(built) == ["_fastlane_thread.c"]
    os.utime(built, (3000, 3000))
    assert native.stale_sources(built) == []
    assert native.stale_sources(tmp_path / "missing.so") == []
    if native.available():  # this tree's own build: make test builds it first
        assert native.stale_sources() == [], "the fast lane's module is older than its sources: run make"
