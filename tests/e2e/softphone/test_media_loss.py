"""A dead browser is noticed at once (media.loss_detect): a `web_lost` event, the metric
gateway_media_lost_total, and the phone hears the reconnecting fill (noise and a 440 Hz double beep)
instead of dead air until the browser's audio is back.

Real peers: a web user (aiortc over the WebSocket protocol) calls a pjsua2 desk phone that records what
it hears. The web user sends 1000 Hz before the loss and 1300 Hz after a reattach; the fill's beep is
440 Hz, so the phone's recording tells the three apart.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from gateway.app import Gateway
from gateway.config import Config
from gateway.media.bridge import MediaBridge
from gateway.media.codecs.comfort_fill import BEEP_HZ
from gateway.media.fastlane.native import SIP_TO_WEB, WEB_TO_SIP
from peers.audio import read_wav, rms, tone_ratio
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, wait_until
from tests.e2e.harness import running_gateway as running
from tests.e2e.softphone.test_reconnect import call_the_phone

PHONE_TONE = 600  # what the web user hears from the phone


def config(phone: DeskPhone, rtp: int, **media: object) -> Config:
    return gateway_config(
        phone.address, media={"rtp_ports": {"start": rtp}, **media}, web_auth={"reconnect_grace": 30}
    )


async def lost_count(gateway: Gateway, cause: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(gateway.ops.metrics_url) as reply:
        text = await reply.text()
    found = re.search(rf'^gateway_media_lost_total\{{cause="{cause}",leg="web"\}} (\S+)$', text, re.M)
    assert found is not None, text
    return float(found[1])


def window(path: Path, start: float, end: float) -> tuple[int, list[int]]:
    """The recording's rate and its samples from `start` to `end` seconds before its end."""
    rate, samples = read_wav(path)
    return rate, list(samples[len(samples) - int(start * rate) : len(samples) - int(end * rate)])


def blocks_with(recording: tuple[int, list[int]], freq: float, block: float = 0.08) -> int:
    """How many blocks of `block` seconds hold `freq` (the fill's beeps are 160 ms long)."""
    rate, samples = recording
    size = int(block * rate)
    return sum(
        1
        for start in range(0, len(samples) - size + 1, size)
        if rms(samples[start : start + size]) > 300
        and tone_ratio(samples[start : start + size], rate, freq) > 0.5
    )


async def test_browser_gone_silent_is_reported_and_the_phone_hears_the_fill(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running(config(phone, 37000)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        assert await lost_count(gateway, "silence") == 0
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
            loop = asyncio.get_running_loop()
            peer.vanish()  # its network went: no RTP, RTCP nor consent answers; the socket stays
            gone = loop.time()
            lost = await alice.wait_for("web_lost", timeout=10, call_id=call_id)
            noticed = loop.time() - gone
            assert lost["cause"] == "silence", lost
            assert 1.5 <= lost["seconds"] <= 2.5, lost  # the gateway's own measure of the silence
            assert noticed < gateway.config.media.inactivity_timeout, f"reported after {noticed:.1f} s"
            assert await lost_count(gateway, "silence") == 1
            await asyncio.sleep(3.0)  # the phone records the fill meanwhile
            assert not [e for e in alice.events if e["type"] == "ended"], alice.events
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
        wav = await phone.wait_for_recording(number)
        fill = window(wav, 2.8, 0.3)  # from ~0.5 s after the report to the hangup
        assert rms(fill[1]) > 100, f"dead air (rms {rms(fill[1]):.0f})"
        assert blocks_with(fill, BEEP_HZ) >= 1, "no reconnecting beep"
        assert blocks_with(fill, 1000) == 0, "the web user's tone after it was gone"
        assert await lost_count(gateway, "silence") == 1  # once per loss


async def test_without_loss_detection_the_phone_hears_dead_air(tmp_path: Path) -> None:
    """The control (media.loss_detect 0, as before): no event, and the phone's recording is silent."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running(config(phone, 37200, loss_detect=0)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
            peer.vanish()
            await asyncio.sleep(3.5)  # shorter than inactivity_timeout: the leg is not given up yet
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
        assert not [e for e in alice.events if e["type"] == "web_lost"]
        assert await lost_count(gateway, "silence") == 0
        wav = await phone.wait_for_recording(number)
        quiet = window(wav, 2.3, 0.3)
        assert rms(quiet[1]) < 20 and blocks_with(quiet, BEEP_HZ) == 0


async def test_closed_browser_fill_until_it_reattaches(tmp_path: Path) -> None:
    """A killed page (socket and RTCPeerConnection closed): counted at once, the phone hears the fill
    through the grace, and the browser's audio again once it reattached (the fill stops)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running(config(phone, 37400)) as gateway,
    ):
        first = WebPeer(freq=1000)
        alice = WebUser(gateway.http_url, "alice", ALICE_SECRET)
        await alice.__aenter__()
        loop = asyncio.get_running_loop()
        try:
            call_id, number = await call_the_phone(alice, first, phone)
            await wait_until(lambda: first.heard(PHONE_TONE, last=1.0), timeout=10)
        finally:
            gone = loop.time()
            await asyncio.gather(alice.close(), first.close())
        while await lost_count(gateway, "detached") < 1:
            assert loop.time() - gone <= 2.5, "the closed browser was not reported within 2.5 s"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # the phone records the fill
        second = WebPeer(freq=1300)
        try:
            async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                await again.wait_for("calls")
                reattach = loop.time()
                await again.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
                reattached = await again.wait_for("reattached", call_id=call_id)
                await second.accept(reattached["sdp"])
                await wait_until(lambda: second.heard(PHONE_TONE, last=1.0), timeout=10)
                await asyncio.sleep(2.0)  # the renewed audio in the phone's recording
                await phone.hangup(number)
                ended = loop.time()
                await again.wait_for("ended", call_id=call_id)
        finally:
            await second.close()
        wav = await phone.wait_for_recording(number)
        fill = window(wav, ended - gone - 0.5, ended - reattach)  # between the loss and the reattach
        assert rms(fill[1]) > 100 and blocks_with(fill, BEEP_HZ) >= 1, "no fill while the browser was away"
        tail = window(wav, 1.4, 0.2)
        assert blocks_with(tail, 1300) >= 3, "the browser's audio did not come back"
        assert blocks_with(tail, BEEP_HZ) == 0, "the fill went on after the reattach"
        assert await lost_count(gateway, "detached") == 1


def stop_sending(peer: WebPeer) -> None:
    """The page holds as a browser may: no more RTP (its sender disabled, as aiortc does for a direction
    without send); RTCP and the answers to ICE consent checks go on."""
    peer.transceiver.sender._enabled = False


async def test_browser_gone_on_hold_is_reported_without_a_fill(tmp_path: Path) -> None:
    """On hold no RTP is expected from the browser: a page that stops sending is not lost while it answers
    the gateway's ICE consent checks (RFC 7675, one a second while no media arrive); once it answers none
    for media.loss_detect + 1 s it is reported (`unanswered`) within a few seconds, not at
    inactivity_timeout; the held phone hears no fill."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running(config(phone, 38000)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)  # the media is up
            await alice.request({"type": "hold", "call_id": call_id})
            await alice.wait_for("held", call_id=call_id)
            stop_sending(peer)
            await asyncio.sleep(gateway.config.media.loss_detect + 3.0)  # silent on purpose, still there
            assert not [e for e in alice.events if e["type"] == "web_lost"], alice.events
            loop = asyncio.get_running_loop()
            peer.vanish()
            gone = loop.time()
            lost = await alice.wait_for("web_lost", timeout=10, call_id=call_id)
            noticed = loop.time() - gone
            assert lost["cause"] == "unanswered", lost
            bound = gateway.config.media.loss_detect + 1.5  # one consent check's interval, and a margin
            assert lost["seconds"] <= bound and noticed <= bound, (lost, noticed)
            assert noticed < gateway.config.media.inactivity_timeout
            assert await lost_count(gateway, "unanswered") == 1
            assert await lost_count(gateway, "silence") == 0  # nothing was expected on hold
            await asyncio.sleep(2.5)  # the phone's recording of the wait
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
        held = window(await phone.wait_for_recording(number), 2.3, 0.3)
        assert blocks_with(held, BEEP_HZ) == 0, "a fill while the call was on hold"
        assert await lost_count(gateway, "unanswered") == 1 and await lost_count(gateway, "detached") == 0


async def test_the_fill_leaves_the_phones_audio_on_the_fast_lane(tmp_path: Path) -> None:
    """While the fill plays to the phone, the call stays linked to the fast lane: its engine carries the
    phone's audio to the browser (only the lane to the phone is disarmed, Python plays the fill there), and
    when the browser's audio is back the fill stops and that lane is armed again. Before, the fill
    unlinked the call: 500 browsers silent at once put 1 000 directions on the event loop (issue 38)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running(config(phone, 38200)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
            bridge = gateway.driver._runtimes[call_id].bridge
            assert isinstance(bridge, MediaBridge) and bridge.fast_lane is not None
            lane = bridge.fast_lane
            await wait_until(lambda: lane.link is not None and lane.link.native.armed(SIP_TO_WEB), timeout=5)
            stop_sending(peer)
            await alice.wait_for("web_lost", timeout=10, call_id=call_id)
            await asyncio.sleep(0.2)  # the lanes re-armed for the fill
            before = bridge.stats()
            await asyncio.sleep(1.5)
            after = bridge.stats()
            assert lane.link is not None, "the fill unlinked the call"
            assert not lane.link.native.armed(WEB_TO_SIP), (
                "the engine's lane to the phone is armed during the fill"
            )
            assert lane.link.native.armed(SIP_TO_WEB), "the phone's audio left the fast lane during the fill"
            carried = after.fast_lane_packets - before.fast_lane_packets
            assert carried >= 50, f"the engine carried {carried} packets of the phone's in 1.5 s"
            assert after.web_to_sip.received == before.web_to_sip.received  # the browser is silent
            assert peer.heard(PHONE_TONE, last=1.0), "the browser stopped hearing the phone during the fill"
            peer.transceiver.sender._enabled = True  # the browser's audio is back
            await wait_until(lambda: lane.link is not None and lane.link.native.armed(WEB_TO_SIP), timeout=5)
            await asyncio.sleep(2.0)  # the browser's tone in the phone's recording again
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
        wav = await phone.wait_for_recording(number)
        rate, samples = read_wav(wav)
        fill = window(wav, len(samples) / rate, 2.1)  # up to the browser's audio back: the fill in it
        assert blocks_with(fill, BEEP_HZ) >= 1, "no reconnecting beep during the fill"
        tail = window(wav, 1.4, 0.2)
        assert blocks_with(tail, 1000) >= 3, "the browser's audio did not come back after the fill"
        assert blocks_with(tail, BEEP_HZ) == 0, "the fill went on after the browser's audio was back"
