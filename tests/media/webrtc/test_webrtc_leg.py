"""The web leg alone: what aiortc is given and gives, trickle ICE, mDNS, failures; plus web_sdp units."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

import sdp
from gateway.media.bridge_settings import web_certificate
from gateway.media.codecs import codec_choice
from gateway.media.events import DtlsFailed, IceFailed, MediaConnected, MediaEvent, TextReceived
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.webrtc import web_sdp
from gateway.media.webrtc.offer_check import check_web_offer
from gateway.media.webrtc.web_leg_state import WebLegError, WebLegState
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg
from peers.webpeer import WebPeer
from tests.sdp import samples

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
AUDIO_VIDEO = (DATA / "chromium-offer-audio-video.sdp").read_text()
AUDIO = (DATA / "chromium-offer-audio.sdp").read_text()
PCMU = [codec_choice.known("PCMU"), *codec_choice.WEB_EVENTS]
MDNS = "candidate:1 1 udp 2122260223 3f2a4b6c-0000-4000-8000-000000000000.local 39047 typ host"


def make_leg(events: list[MediaEvent], **options: object) -> WebRtcLeg:
    opts = WebLegOptions(**{"host_addresses": ("127.0.0.1",), **options})  # type: ignore[arg-type]
    return WebRtcLeg(opts, on_rtp=lambda *fields: None, on_event=events.append, call_id="t")


def with_data_channel(text: str) -> str:
    return text.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1") + (
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
        "a=ice-ufrag:OghT\r\na=ice-pwd:GVPKVMZf1SDxd426oojPvaZQ\r\na=setup:actpass\r\na=sctp-port:5000\r\n"
    )


async def test_aiortc_alone_answers_video_which_is_why_offers_are_pruned() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        await pc.setRemoteDescription(RTCSessionDescription(AUDIO_VIDEO, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        video = sdp.parse(pc.localDescription.sdp).media[1]
        assert video.media == "video" and video.port != 0  # an active recvonly video stream
    finally:
        await pc.close()


async def test_chromium_audio_video_offer_gets_video_rejected_with_port_zero() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events)
    try:
        answer = await leg.accept_offer(sdp.parse(AUDIO_VIDEO), PCMU)
        assert [(m.media, m.port == 0, m.mid) for m in answer.media] == [
            ("audio", False, "0"),
            ("video", True, "1"),
        ]
        assert answer.bundle_mids() == ("0",)
        codecs = [(c.payload_type, c.name, c.clock_rate) for c in answer.media[0].codecs]
        # both event rates, once each (aiortc's preference filter would list one twice: see aiortc_hooks)
        assert codecs == [(0, "PCMU", 8000), (126, "telephone-event", 8000), (110, "telephone-event", 48000)]
        assert answer.media[0].setup is sdp.Setup.ACTIVE
        assert " 127.0.0.1 " in sdp.write(answer)
        assert leg.state is WebLegState.NEGOTIATING
    finally:
        await leg.close()
        await leg.close()
    assert leg.state is WebLegState.CLOSED


async def test_data_channel_m_line_is_rejected_without_data_channel() -> None:
    leg = make_leg([])
    try:
        answer = await leg.accept_offer(sdp.parse(with_data_channel(AUDIO)), PCMU)
        assert [(m.media, m.port) for m in answer.media][1] == ("application", 0)
        assert answer.media[1].proto == "UDP/DTLS/SCTP"
    finally:
        await leg.close()


async def test_data_channel_m_line_is_answered_and_bundled_with_data_channel() -> None:
    leg = make_leg([], data_channel=True)
    try:
        answer = await leg.accept_offer(sdp.parse(with_data_channel(AUDIO)), PCMU)
        application = answer.media[1]
        assert (application.media, application.proto, application.mid) == (
            "application",
            "UDP/DTLS/SCTP",
            "1",
        )
        assert application.port != 0 and answer.bundle_mids() == ("0", "1")
        assert application.get("sctp-port") == "5000"
    finally:
        await leg.close()


def test_prune_keeps_only_a_bundled_data_channel() -> None:
    bundled = web_sdp.prune_offer(sdp.parse(with_data_channel(AUDIO)), data_channel=True)
    assert bundled.data_index == 1 and [m.media for m in bundled.description.media] == [
        "audio",
        "application",
    ]
    assert bundled.description.bundle_mids() == ("0", "1")
    unbundled = sdp.parse(with_data_channel(AUDIO).replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0"))
    assert web_sdp.prune_offer(unbundled, data_channel=True).data_index is None
    assert web_sdp.prune_offer(sdp.parse(with_data_channel(AUDIO))).data_index is None  # not asked


async def test_chat_text_both_ways_on_the_browsers_data_channel() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events, data_channel=True)
    peer = WebPeer(chat=True)
    try:
        answer = await leg.accept_offer(sdp.parse(await peer.offer()), PCMU)
        await peer.accept(sdp.write(answer))
        await peer.say("hello gateway")
        for _ in range(300):
            if TextReceived("hello gateway") in events:
                break
            await asyncio.sleep(0.01)
        assert TextReceived("hello gateway") in events
        assert leg.send_text("hello browser")
        await peer.wait_text("hello browser")
        assert peer.channel is not None
        peer.channel.send(b"\x00binary")  # dropped: only text goes to SIP MESSAGE
        peer.channel.send("x" * 9000)  # dropped: larger than a MESSAGE body may be
        await peer.say("after")
        for _ in range(300):
            if TextReceived("after") in events:
                break
            await asyncio.sleep(0.01)
        assert [e.text for e in events if isinstance(e, TextReceived)] == ["hello gateway", "after"]
    finally:
        await peer.close()
        await leg.close()
    assert not leg.send_text("gone")


def test_prune_keeps_bundle_candidates_and_holds_back_mdns() -> None:
    name = "3f2a4b6c-0000-4000-8000-000000000000.local"
    offer = sdp.parse(AUDIO_VIDEO.replace("2122260223 127.0.0.1 39047", f"2122260223 {name} 39047"))
    pruned = web_sdp.prune_offer(offer)
    assert len(pruned.description.media) == 1 and pruned.mid == "0"
    assert all(not c.is_mdns for c in pruned.description.media[0].candidates)
    assert [c.address for c in pruned.mdns] == [name]
    assert len(pruned.description.media[0].candidates) == 3  # the audio m-line's own, not the video's
    assert pruned.description.bundle_mids() == ("0",)


def test_no_end_of_candidates_without_candidates() -> None:
    text = AUDIO.replace("a=ice-options:trickle", "a=ice-options:trickle\r\na=end-of-candidates")
    stripped = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("a=candidate"))
    description = sdp.parse(stripped)
    assert description.media[0].end_of_candidates
    assert not web_sdp.without_empty_end(description).media[0].end_of_candidates
    assert not web_sdp.prune_offer(description).description.media[0].end_of_candidates


def test_offer_without_audio_is_unacceptable() -> None:
    video_only = AUDIO_VIDEO.split("m=audio")[0] + "m=video" + AUDIO_VIDEO.split("m=video")[1]
    with pytest.raises(sdp.SdpUnacceptable) as caught:
        web_sdp.prune_offer(sdp.parse(video_only))
    assert caught.value.sip_status == 488


async def test_peer_connection_never_uses_a_default_stun_server() -> None:
    leg = make_leg([])
    try:
        configuration = leg._pc._RTCPeerConnection__configuration  # type: ignore[attr-defined]
        assert configuration.iceServers == []
    finally:
        await leg.close()


async def test_trickled_candidates_connect() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events)
    peer = WebPeer()
    try:
        offer = sdp.parse(await peer.offer())
        candidates = offer.media[0].candidates
        assert candidates
        trickling = dataclasses.replace(
            offer, media=(offer.media[0].without("candidate", "end-of-candidates"),)
        )
        answer = await leg.accept_offer(trickling, PCMU)
        await peer.accept(sdp.write(answer))
        await leg.add_candidate(
            sdp.candidate_from_json({"candidate": "", "sdpMid": "0"})
        )  # held back: none yet
        for candidate in candidates:
            await leg.add_candidate(
                sdp.candidate_from_json({"candidate": candidate.to_sdp(), "sdpMLineIndex": 0})
            )
        for _ in range(300):
            if any(isinstance(e, MediaConnected) for e in events):
                break
            await asyncio.sleep(0.01)
        assert MediaConnected() in events and leg.state is WebLegState.CONNECTED
        await peer.close()  # the tab goes away: aiortc sends a DTLS close_notify
        for _ in range(100):
            if len(events) > 1:
                break
            await asyncio.sleep(0.01)
        assert events[1:] == [DtlsFailed("the browser closed DTLS (close_notify)", closed_by_peer=True)]
        assert leg.state is WebLegState.FAILED
    finally:
        await peer.close()
        await leg.close()


async def test_legs_share_the_process_certificate_and_connect_with_it() -> None:
    """Two web legs with the process's DTLS certificate (no key made per call) answer with its
    fingerprint, and a browser connects to one of them (DTLS checks the fingerprint)."""
    certificates = DtlsCertificates()
    shared = web_certificate(certificates)
    assert shared is not None
    events: list[MediaEvent] = []
    legs = [make_leg(events, certificate=shared), make_leg([], certificate=shared)]
    peer = WebPeer()
    try:
        answer = await legs[0].accept_offer(sdp.parse(await peer.offer()), PCMU)
        other = await legs[1].accept_offer(sdp.parse(AUDIO), PCMU)
        expected = certificates.current().fingerprint.value
        for description in (answer, other):
            assert [f.value for f in description.media[0].fingerprints if f.algorithm == "sha-256"] == [
                expected
            ]
        await peer.accept(sdp.write(answer))
        for _ in range(300):
            if MediaConnected() in events:
                break
            await asyncio.sleep(0.01)
        assert MediaConnected() in events and legs[0].state is WebLegState.CONNECTED
    finally:
        await peer.close()
        for leg in legs:
            await leg.close()


async def test_unresolvable_mdns_candidate_never_blocks_and_ice_fails_fast() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events, ice_timeout=2.0, mdns_timeout=0.5)
    loop = asyncio.get_running_loop()
    try:
        text = AUDIO.replace("a=candidate:1027274323 1 udp 2122260223 127.0.0.1 39047 typ host", "a=" + MDNS)
        text = "".join(
            ln for ln in text.splitlines(keepends=True) if not ln.startswith("a=candidate:") or ".local" in ln
        )
        started = loop.time()
        await leg.accept_offer(sdp.parse(text), PCMU)
        await leg.add_candidate(
            sdp.candidate_from_json({"candidate": MDNS.replace("3f2a", "4f2a"), "sdpMid": "0"})
        )
        await leg.add_candidate(sdp.candidate_from_json({"candidate": "", "sdpMid": "0"}))
        assert loop.time() - started < 0.5
        while not events and loop.time() - started < 4.0:
            await asyncio.sleep(0.05)
        assert len(events) == 1 and isinstance(events[0], IceFailed), events
        assert loop.time() - started < 3.0
        assert leg.state is WebLegState.FAILED
    finally:
        await leg.close()


async def test_ice_timeout_when_no_candidate_ever_arrives() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events, ice_timeout=0.3)
    try:
        text = "".join(ln for ln in AUDIO.splitlines(keepends=True) if not ln.startswith("a=candidate:"))
        await leg.accept_offer(sdp.parse(text), PCMU)
        await asyncio.sleep(0.5)
        assert events == [IceFailed("not connected after 0.3 s")]
    finally:
        await leg.close()


async def test_wrong_certificate_fingerprint_is_a_dtls_failure() -> None:
    events: list[MediaEvent] = []
    leg = make_leg(events, ice_timeout=5.0)
    peer = WebPeer()
    try:
        offer = sdp.parse(await peer.offer())
        wrong = sdp.Fingerprint("sha-256", ":".join(["AB"] * 32))
        section = (
            offer.media[0]
            .without("fingerprint")
            .with_attributes(
                [
                    *offer.media[0].without("fingerprint").attributes,
                    sdp.Attribute("fingerprint", wrong.to_sdp()),
                ]
            )
        )
        answer = await leg.accept_offer(
            dataclasses.replace(offer.without("fingerprint"), media=(section,)), PCMU
        )
        await peer.accept(sdp.write(answer))
        for _ in range(300):
            if events:
                break
            await asyncio.sleep(0.02)
        assert [type(e) for e in events] == [DtlsFailed]
        assert leg.state is WebLegState.FAILED
    finally:
        await peer.close()
        await leg.close()


async def test_every_web_leg_state_pair() -> None:
    import itertools

    from gateway.media.webrtc.web_leg_state import TRANSITIONS, WebLegError

    leg = make_leg([])
    try:
        for old, new in itertools.product(WebLegState, WebLegState):
            leg._state = old
            if old is new:
                leg._set_state(new)  # staying is a no-op
            elif (old, new) in TRANSITIONS:
                leg._set_state(new)
                assert leg.state is new
            else:
                with pytest.raises(WebLegError, match=f"from {old.value} to {new.value}"):
                    leg._set_state(new)
        leg._state = WebLegState.NEW
    finally:
        await leg.close()


async def test_our_offer_opens_a_chat_channel_the_browser_answers() -> None:
    """Calls to a web user (issue 17): with ``data_channel`` the gateway's offer carries m=application
    after the audio, bundled; the answering peer gets the channel ``chat`` and text goes both ways."""
    events: list[MediaEvent] = []
    leg = make_leg(events, data_channel=True)
    peer = WebPeer()
    try:
        offer = await leg.create_offer(PCMU)
        assert [m.media for m in offer.media] == ["audio", "application"]
        assert offer.bundle_mids() == ("0", "1")
        answer = sdp.parse(await peer.answer(sdp.write(offer)))
        assert answer.media[1].port != 0, "aiortc turned the data channel down"
        await leg.accept_answer(answer)
        await peer.connected()
        for _ in range(500):
            if leg.send_text("hello web user"):
                break
            await asyncio.sleep(0.01)
        await peer.wait_text("hello web user")
        assert peer.channel is not None and peer.channel.label == "chat"
        await peer.say("hello gateway")
        for _ in range(300):
            if TextReceived("hello gateway") in events:
                break
            await asyncio.sleep(0.01)
        assert TextReceived("hello gateway") in events
        assert len((await leg.create_offer(PCMU)).media) == 2  # a re-offer opens no second channel
    finally:
        await peer.close()
        await leg.close()


async def test_our_offer_has_no_data_channel_without_the_option() -> None:
    leg = make_leg([])
    try:
        assert [m.media for m in (await leg.create_offer(PCMU)).media] == ["audio"]
    finally:
        await leg.close()


async def test_an_answer_turning_the_data_channel_down_still_connects_the_audio() -> None:
    """A WebRTC client without SCTP answers m=application with port 0 (RFC 3264 §6): the audio connects."""
    events: list[MediaEvent] = []
    leg = make_leg(events, data_channel=True)
    peer = WebPeer()
    try:
        offer = await leg.create_offer(PCMU)
        answer = sdp.parse(await peer.answer(sdp.write(offer)))
        refused = web_sdp.rejected(answer.media[1])
        answer = dataclasses.replace(
            answer,
            attributes=tuple(
                sdp.Attribute("group", "BUNDLE 0") if a.name == "group" else a for a in answer.attributes
            ),
            media=(answer.media[0], refused),
        )
        assert "m=application 0 " in sdp.write(answer)
        await leg.accept_answer(answer)
        for _ in range(500):
            if MediaConnected() in events:
                break
            await asyncio.sleep(0.01)
        assert MediaConnected() in events and leg.state is WebLegState.CONNECTED
    finally:
        await peer.close()
        await leg.close()
    short = make_leg([], data_channel=True)
    try:
        with pytest.raises(WebLegError, match="before our offer"):
            await short.accept_answer(answer)
        await short.create_offer(PCMU)
        with pytest.raises(sdp.SdpUnacceptable, match="1 m-lines for an offer of 2"):
            await short.accept_answer(dataclasses.replace(answer, media=answer.media[:1]))
    finally:
        await short.close()


def test_an_offer_is_pruned_once_per_call_setup() -> None:
    """The API's check, the bridge and the web leg prune the same offer (issue 38): the result is kept
    by the offer's identity and flags; another offer, even of the same text, is pruned anew."""
    offer = sdp.parse(with_data_channel(AUDIO))
    first = web_sdp.prune_offer(offer, data_channel=True)
    assert web_sdp.prune_offer(offer, data_channel=True) is first
    assert web_sdp.prune_offer(offer) is not first and web_sdp.prune_offer(offer).data_index is None
    other = sdp.parser._parse(with_data_channel(AUDIO))
    assert other is not offer and web_sdp.prune_offer(other, data_channel=True).original is other


def _audio_last(offer: str) -> str:
    """``offer`` with its audio m-line moved after the others (the BUNDLE group in the new order): what
    Chromium writes when the page made its data channel, or added video, before its microphone's track."""
    head, *rest = offer.replace("\r\n", "\n").rstrip("\n").split("\nm=")
    sections = ["m=" + s for s in rest]
    order = [s for s in sections if not s.startswith("m=audio")] + [
        s for s in sections if s.startswith("m=audio")
    ]
    mids = [line[6:] for s in order for line in s.split("\n") if line.startswith("a=mid:")]
    lines = [
        f"a=group:BUNDLE {' '.join(mids)}" if x.startswith("a=group:BUNDLE") else x for x in head.split("\n")
    ]
    return "\r\n".join([*lines, *order]) + "\r\n"


async def test_an_offer_whose_audio_comes_after_its_data_channel_and_video_is_answered() -> None:
    """The offer check read the first m-line as the audio one: an offer with the data channel (or video)
    first was refused, 400 "the audio m-line offers none of ...". Checked and answered in its order now."""
    offer = _audio_last(samples.text("chromium-offer-audio-video-datachannel"))
    assert [m.media for m in sdp.parse(offer).media] == ["video", "application", "audio"]
    await check_web_offer(offer, ["opus", "PCMU"], data_channel=True)
    events: list[MediaEvent] = []
    leg = make_leg(events, data_channel=True)
    try:
        answer = await leg.accept_offer(sdp.parse(offer), PCMU)
        assert [(m.media, m.port != 0) for m in answer.media] == [
            ("video", False), ("application", True), ("audio", True),
        ]  # fmt: skip
        assert answer.media[2].codecs[0].name == "PCMU"
    finally:
        await leg.close()
