"""A call outlives its bridge (issue 34 item 3; gateway/media/bridge_handover.py): bridge 1 carries a
call between an aiortc browser and a plain RTP phone, writes its handover and dies; bridge 2 resumes the
SIP leg from that JSON (a re-offer from its own socket, the o= line carried on), the phone answers and
hears the reconnecting fill, then a new browser's offer attaches to bridge 2 and the tones go both ways,
natively when the fast lane links as it did for bridge 1. Real peers on 127.0.0.1, no mocks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import sdp
from gateway.media import fastlane
from gateway.media.bridge import BridgeError, BridgeState, MediaBridge
from gateway.media.bridge_handover import HandoverError, SipHandover
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice
from gateway.media.codecs.comfort_fill import BEEP_HZ
from gateway.media.events import MediaConnected, MediaEvent, WebMediaLost
from gateway.media.rtp.ports import RtpPortAllocator
from peers.audio import detect_tone
from peers.webpeer import WebPeer
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator

RATE = 8000
BEEP_WINDOW = 1280  # 160 ms, one beep of the fill


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


class Survivor:
    """Bridge 2: a fresh bridge as the runtime builds one, on the same host (its own sockets)."""

    def __init__(self, ports: RtpPortAllocator, **settings: Any) -> None:
        self.events: list[MediaEvent] = []
        self.pool = fastlane.EnginePool() if fastlane.available() else None
        options: dict[str, Any] = {"host_addresses": ("127.0.0.1",), "call_id": "test", **settings}
        self.bridge = MediaBridge(BridgeSettings(ports, fast_lane=self.pool, **options), self.events.append)

    async def close(self) -> None:
        await self.bridge.close()
        if self.pool is not None:
            assert self.pool.engines == [], "an engine outlived its last link"
            self.pool.close()


async def until(check: Any, timeout: float = 5.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(what or "condition not met")
        await asyncio.sleep(0.02)


def beeped(pcm: Any, start: int) -> bool:
    """A 160 ms window of the fill's 440 Hz beep in what the phone heard from sample ``start`` on."""
    return any(
        detect_tone(pcm[at : at + BEEP_WINDOW], RATE, BEEP_HZ, threshold=0.5, min_rms=500)
        for at in range(start, len(pcm) - BEEP_WINDOW + 1, 160)
    )


async def established(ports: RtpPortAllocator) -> tuple[Call, bool]:
    """Bridge 1's call with the tones heard both ways; whether its fast lane linked."""
    call = Call(ports)
    await call.browser_calls()
    await call.connected()
    await call.play(1.0)
    assert call.web.heard(SIP_TONE) and call.phone.heard(WEB_TONE)
    return call, call.link is not None


async def test_a_call_survives_its_bridge(ports: RtpPortAllocator) -> None:
    call, linked = await established(ports)
    survivor = Survivor(ports)
    web2 = WebPeer(WEB_TONE)
    try:
        data = json.loads(json.dumps(call.bridge.handover()))  # plain JSON, as written to Redis
        assert data["sip_srtp"] == "none" and data["sdes"] is None and not data["local_hold"]
        assert data["sip_codec"]["name"] == "PCMU" and data["sip_codec"]["payload_type"] == 0
        first = call.plain_offer
        assert first is not None and call.bridge_address is not None
        await call.bridge.close()  # instance 1 dies: its sockets go, nothing is said to anyone
        await call.web.close()

        bridge = survivor.bridge
        offer = sdp.parse(await bridge.resume_sip(data))
        assert bridge.state is BridgeState.ACTIVE and bridge.awaiting_reanswer
        # RFC 3264 §8: the o= line of the dead instance's last SDP, its version one above its counter
        assert offer.origin.username == first.origin.username
        assert offer.origin.session_id == first.origin.session_id
        assert offer.origin.session_version == data["sip_version"] + 1
        (address, port), _ = codec_choice.remote_rtp(offer, 0)
        endpoint = bridge._sip.endpoint
        assert endpoint is not None and (address, port) == endpoint.local_rtp_address
        assert (address, port) != call.bridge_address  # bridge 2's own socket
        assert offer.media[0].codecs[0].name == "PCMU"  # the negotiated codec first
        assert [c.name for c in offer.media[0].codecs] == [c.name for c in first.media[0].codecs]
        assert offer.direction_for(0) is sdp.Direction.SENDRECV
        assert not [e for e in survivor.events if isinstance(e, WebMediaLost)]  # the dead one's loss

        phone = call.phone
        heard_before = len(phone.pcm)
        phone.remote = (address, port)
        await bridge.answer_to_reoffer(call.phone_answer(offer, phone))
        assert not bridge.awaiting_reanswer
        await until(lambda: beeped(phone.pcm, heard_before), 4.0, "no reconnecting fill from bridge 2")
        assert phone.sources[-1] == (address, port)

        answer = await bridge.renew_web(await web2.offer())
        await web2.accept(answer)
        await until(lambda: any(isinstance(e, MediaConnected) for e in survivor.events), 10.0)
        await web2.connected()
        await asyncio.sleep(0.3)  # the browser's first packets end the fill
        heard_after = len(phone.pcm)
        await call.play(1.0)
        assert web2.heard(SIP_TONE), "the new browser does not hear the phone through bridge 2"
        assert detect_tone(phone.pcm[heard_after:], RATE, WEB_TONE), "the phone does not hear the browser"
        assert not beeped(phone.pcm, heard_after), "the fill went on after the browser came back"
        if linked:  # the fast lane takes bridge 2's call as it took bridge 1's
            lane = bridge.fast_lane
            await until(lambda: lane is not None and lane.link is not None, 5.0, "no fast lane link")
            assert bridge.stats().fast_lane_packets > 0  # (the engine's counts as of now)
    finally:
        await survivor.close()
        await web2.close()
        await call.close()


async def test_a_held_call_is_resumed_on_hold_without_a_fill(ports: RtpPortAllocator) -> None:
    call, _ = await established(ports)
    survivor = Survivor(ports)
    try:
        hold = sdp.parse(await call.bridge.reoffer_to_sip(hold=True))
        await call.bridge.answer_to_reoffer(call.phone_answer(hold, call.phone))
        data = call.bridge.handover()
        assert data["local_hold"] and data["sip_version"] == hold.origin.session_version
        await call.bridge.close()
        offer = sdp.parse(await survivor.bridge.resume_sip(data))
        assert offer.direction_for(0) is sdp.Direction.SENDONLY  # RFC 3264 §8.4: still held
        assert offer.origin.session_version == hold.origin.session_version + 1
        await survivor.bridge.answer_to_reoffer(call.phone_answer(offer, call.phone))
        assert survivor.bridge.local_hold and not survivor.bridge._fill.active
    finally:
        await survivor.close()
        await call.close()


async def test_sdes_is_resumed_with_a_new_key_and_none_is_handed_over(ports: RtpPortAllocator) -> None:
    survivor = Survivor(ports, offer_sdes=True)
    call = Call(ports, offer_sdes=True)
    try:
        offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
        (ours,) = offer.media[0].cryptos
        theirs = sdp.Crypto.new(ours.tag, ours.suite)
        transport = sdp.PlainTransport("127.0.0.1", 40000, crypto=theirs)
        answer = sdp.answer(offer, codecs=["PCMU"], transport=transport)
        await call.web.accept(await call.bridge.answer_from_sip(sdp.write(answer)))
        data = call.bridge.handover()
        text = json.dumps(data)
        assert "inline:" not in text  # RFC 4568 §8.3: the keys are secrets
        assert data["sip_srtp"] == "sdes" and data["sdes"] == {"tag": ours.tag, "suite": ours.suite}
        await call.bridge.close()
        resumed = sdp.parse(await survivor.bridge.resume_sip(json.loads(text)))
        (new,) = resumed.media[0].cryptos
        assert (new.tag, new.suite) == (ours.tag, ours.suite) and new.key != ours.key  # §7.1.4
        assert resumed.media[0].proto == offer.media[0].proto
    finally:
        await survivor.close()
        await call.close()


async def test_the_handover_round_trips_through_json(ports: RtpPortAllocator) -> None:
    call, _ = await established(ports)
    try:
        data = call.bridge.handover()
        assert json.loads(json.dumps(data)) == data
        assert SipHandover.from_dict(json.loads(json.dumps(data))).as_dict() == data
        assert set(data) == {
            "format", "sip_local", "sip_remote", "sip_version", "sip_codec", "sip_event", "packet_ms",
            "local_hold", "sip_srtp", "sdes", "web_codec",
        }  # fmt: skip
        assert data["sip_event"]["name"] == "telephone-event" and data["packet_ms"] == 20
        assert data["web_codec"] is not None
    finally:
        await call.close()


def _broken(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = dict(data)
    if value is KeyError:
        del changed[key]
    else:
        changed[key] = value
    return changed


MALFORMED: list[tuple[str, Any, str]] = [
    ("sip_local", KeyError, "missing \\['sip_local'\\]"),
    ("extra", 1, "unknown \\['extra'\\]"),
    ("format", 2, "format 2"),
    ("sip_local", "not an sdp", "sip_local is not an SDP"),
    ("sip_remote", 42, "'sip_remote' must be str"),
    ("sip_version", True, "'sip_version' must be int"),
    ("sip_version", -1, "sip_version must be"),
    ("sip_codec", None, "'sip_codec' must be dict"),
    ("sip_codec", {"name": "PCMU"}, "sip_codec: .*'payload_type' missing"),
    ("sip_codec", {"payload_type": 0, "name": "PCMU", "clock_rate": 0, "channels": 1, "fmtp": None},
     "sip_codec: clock rate must be positive"),
    ("sip_srtp", "zrtp", "sip_srtp must be one of"),
    ("sdes", {"tag": 1, "suite": "AES_CM_128_HMAC_SHA1_80"}, "sdes must be given exactly when"),
    ("packet_ms", 0, "packet_ms must be"),
    ("local_hold", "no", "'local_hold' must be bool"),
]  # fmt: skip


async def test_a_malformed_handover_is_refused_naming_the_key(ports: RtpPortAllocator) -> None:
    call, _ = await established(ports)
    survivor = Survivor(ports)
    try:
        data = call.bridge.handover()
        for key, value, message in MALFORMED:
            with pytest.raises(HandoverError, match=message):
                await survivor.bridge.resume_sip(_broken(data, key, value))
            # refused before anything opened: the bridge is as fresh as before
            assert survivor.bridge.state is BridgeState.IDLE and survivor.bridge._sip.endpoint is None
        await survivor.bridge.resume_sip(data)  # and still takes a good one
    finally:
        await survivor.close()
        await call.close()


async def test_what_cannot_be_handed_over_or_resumed_says_why(ports: RtpPortAllocator) -> None:
    survivor = Survivor(ports)
    narrow = Survivor(ports, sip_codecs=("PCMA",))
    webrtc = Survivor(ports, offer_webrtc=True)
    call = Call(ports)
    try:
        with pytest.raises(BridgeError, match="handover\\(\\) in state idle"):
            call.bridge.handover()
        with pytest.raises(HandoverError, match="a JSON object"):
            await survivor.bridge.resume_sip([])  # type: ignore[arg-type]
        await call.browser_calls()
        data = call.bridge.handover()
        with pytest.raises(HandoverError, match="codec PCMU is not in \\['PCMA'\\]"):
            await narrow.bridge.resume_sip(data)
        with pytest.raises(HandoverError, match="used none; this bridge's offers are WebRTC media"):
            await webrtc.bridge.resume_sip(data)
        await survivor.bridge.resume_sip(data)
        with pytest.raises(BridgeError, match="resume_sip\\(\\) in state active"):
            await survivor.bridge.resume_sip(data)
    finally:
        for bridge in (survivor, narrow, webrtc):
            await bridge.close()
        await call.close()
