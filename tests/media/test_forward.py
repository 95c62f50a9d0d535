"""The sans-I/O parts of the bridge: timestamp mapping, one forwarding direction, codec choice, states."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

import sdp
from gateway.media.bridge import TRANSITIONS, BridgeError, BridgeState, MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.dtmf import DtmfSender, TelephoneEvent
from gateway.media.forward import MediaPath
from gateway.media.rtp.retime import FrameClock, TimestampMapper
from peers.audio import sine, ulaw_encode
from tests.media.bridge_harness import allocator

PCMU = choice.known("PCMU")
OPUS = choice.known("opus")
PCMA = choice.known("PCMA")
TE = choice.SIP_EVENT


def test_mapper_is_continuous_across_a_new_ssrc() -> None:
    mapper = TimestampMapper(8000, 8000, start=1000)
    assert [mapper.map(1, 5000 + 160 * i, i * 0.02) for i in range(3)] == [1000, 1160, 1320]
    # early media ends, the answer's source starts with another SSRC and timestamp 0.1 s later
    assert mapper.map(2, 123456, 0.14) == 1320 + 800  # the last one + 0.1 s of clock
    assert mapper.map(2, 123456 + 160, 0.16) == 2280
    assert mapper.reanchors == 1


def test_mapper_converts_clock_rates_and_wraps() -> None:
    mapper = TimestampMapper(8000, 48000, start=2**32 - 960)
    assert mapper.map(7, 2**32 - 160, 0.0) == 2**32 - 960
    assert mapper.map(7, 0, 0.02) == 0  # both timelines wrapped (RFC 3550 §5.1)


def test_mapper_reanchors_on_a_jump_but_not_on_a_silence_gap() -> None:
    mapper = TimestampMapper(8000, 8000, start=0)
    mapper.map(1, 0, 0.0)
    assert mapper.map(1, 8000, 1.0) == 8000  # 1 s of silence suppression: timestamps follow the clock
    assert mapper.map(1, 8000 + 80000, 1.02) == 8160  # 10 s jump in 20 ms: a new timeline
    assert mapper.reanchors == 1


def test_before_its_first_packet_the_timeline_runs_on_the_clock_from_its_first_use() -> None:
    """The reconnecting fill plays on the output timeline (now_out) while the input is silent from the
    start; the input's first packet continues from where the fill got to, not from where it began (the
    SIP side's timestamps stepped back by the fill's whole length)."""
    mapper = TimestampMapper(48000, 8000, start=1000)
    assert mapper.now_out(10.0) == 1000  # the fill's first frame
    assert mapper.now_out(12.0) == 1000 + 2 * 8000  # two seconds of fill later
    assert mapper.map(4, 960 * 50, 12.5) == 1000 + int(2.5 * 8000)  # the browser's first packet
    assert mapper.map(4, 960 * 51, 12.52) == 1000 + int(2.5 * 8000) + 160 and mapper.reanchors == 0
    unused = TimestampMapper(8000, 8000, start=7)
    assert unused.map(1, 99, 50.0) == 7  # never used before: the first packet starts it


def test_an_event_before_the_first_packet_leaves_the_timeline_running_once() -> None:
    """An RFC 4733 event (peek) of another SSRC before the first audio packet: the timeline stands where
    the clock brought it, and later times count from there, not twice from its first use."""
    mapper = TimestampMapper(8000, 8000, start=1000)
    assert mapper.now_out(10.0) == 1000
    assert mapper.peek(0xD, 5, 12.0) == 1000 + 2 * 8000
    assert mapper.now_out(13.0) == 1000 + 3 * 8000
    assert mapper.map(0xA, 777, 13.0) == 1000 + 3 * 8000


def test_mapper_adopts_the_fast_lanes_anchors_before_its_first_packet_only() -> None:
    mapper = TimestampMapper(8000, 8000, start=500)
    assert mapper.anchor_state() is None and mapper.anchor_out == 500
    mapper.adopt(9, 7000, 500, 0.0)  # the engine armed a primed lane on SSRC 9's packet stamped 7000
    assert mapper.advance(9, 7000 + 160 * 4, 0.08, 500 + 160 * 4)  # its last forwarded, mapped alike
    assert mapper.map(9, 7000 + 160 * 5, 0.1) == 500 + 160 * 5 and mapper.reanchors == 0
    mapper.adopt(3, 0, 0, 1.0)  # packets were mapped: nothing changes
    assert mapper.anchor_state() == (7000, 500, 7000 + 160 * 5, 0.1)


def test_a_path_primes_its_first_lane_until_a_packet_came() -> None:
    path = _path({0: PCMU, 101: TE}, PCMU)
    start = path.now_timestamp(1.0)  # (a fill's first frame, say)
    first = path.first_lane(0, 3.0)
    assert first is not None and (first.payload_type, first.last_now) == (0, 3.0)
    assert first.anchor_out == (start + 2 * 8000) % 2**32  # where the timeline stands at the priming
    assert path.lane() is None  # no packet yet: only the primed one
    assert path.forward_audio(5, 1, 1000, 0, 3.0) >= 0
    assert path.first_lane(0, 3.0) is None and path.lane() is not None


def test_frame_clock_counts_frames_and_resyncs_after_a_gap() -> None:
    clock = FrameClock(tolerance=3 * 960)
    assert [clock.stamp(0, 960), clock.stamp(960, 960), clock.stamp(960, 960)] == [0, 960, 1920]
    assert clock.stamp(100_000, 960) == 100_000


def _path(incoming: dict[int, sdp.Codec], out: sdp.Codec, event: sdp.Codec | None = TE) -> MediaPath:
    path = MediaPath("test")
    path.configure(incoming, out, event)
    return path


def test_same_codec_is_forwarded_untouched_and_loss_is_counted() -> None:
    path = _path({0: PCMU, 101: TE}, PCMU)
    payload = ulaw_encode(sine(600, seconds=0.02))
    first, _ = path.feed(5, 100, 1000, 0, True, payload, 0.0)
    second, _ = path.feed(5, 103, 1480, 0, False, payload, 0.06)  # 101 and 102 lost
    assert first[0].payload == payload and first[0].payload_type is None and first[0].marker
    assert (second[0].timestamp - first[0].timestamp) % 2**32 == 480
    assert path.passthrough and path.stats().lost == 2 and path.stats().transcoded == 0
    assert path.gaps == 1  # one loss event of two packets (conceal_choice reads their mean length)
    path.feed(5, 105, 1640, 0, False, payload, 0.08)  # 104 lost
    assert (path.lost, path.gaps) == (3, 2)


def test_forward_audio_is_feed_for_pass_through_audio_and_declines_the_rest_uncounted() -> None:
    fast, slow = _path({0: PCMU, 8: PCMA, 101: TE}, PCMU), _path({0: PCMU, 8: PCMA, 101: TE}, PCMU)
    payload = ulaw_encode(sine(600, seconds=0.02))
    mapped, fed = [], []
    for seq, ts, now in ((100, 1000, 0.0), (103, 1480, 0.06), (104, 1640, 0.08)):
        mapped.append(fast.forward_audio(5, seq, ts, 0, now))
        fed.append(slow.feed(5, seq, ts, 0, False, payload, now)[0][0].timestamp)
    assert [(m - mapped[0]) % 2**32 for m in mapped] == [(f - fed[0]) % 2**32 for f in fed] == [0, 480, 640]
    assert fast.stats() == slow.stats() and fast.stats().lost == 2
    before = fast.stats()
    assert fast.forward_audio(5, 105, 1800, 101, 0.1) == -1  # an event: feed() handles it
    assert fast.forward_audio(5, 105, 1800, 8, 0.1) == -1  # another codec: transcoded by feed()
    assert fast.forward_audio(5, 105, 1800, 99, 0.1) == -1  # unknown: dropped (and counted) by feed()
    fast.enabled = False
    assert fast.forward_audio(5, 105, 1800, 0, 0.1) == -1  # held: feed() drops and counts it
    assert fast.stats() == before


def test_other_codec_is_transcoded_into_20_ms_frames() -> None:
    path = _path({0: PCMU}, OPUS)
    out = []
    for i in range(5):
        packets, _ = path.feed(5, i, 160 * i, 0, False, ulaw_encode(sine(600, seconds=0.02)), i * 0.02)
        out += packets
    assert not path.passthrough and path.stats().transcoded == 5
    assert len(out) >= 4
    assert all((b.timestamp - a.timestamp) % 2**32 == 960 for a, b in itertools.pairwise(out))


def test_held_direction_forwards_nothing_and_drops_comfort_noise() -> None:
    path = _path({0: PCMU}, PCMU)
    assert path.feed(5, 1, 0, 13, False, b"\x40", 0.0) == ([], [])  # CN not negotiated towards the browser
    path.enabled = False
    assert path.feed(5, 2, 160, 0, False, b"\xff" * 160, 0.02) == ([], [])
    assert path.stats().dropped == 2


def test_telephone_events_are_reported_once_and_forwarded_at_the_output_clock() -> None:
    path = _path({111: OPUS, 110: choice.WEB_EVENTS[1]}, PCMU, TE)
    path.feed(9, 1, 48000, 111, False, b"\x00", 0.0)
    digits = []
    forwarded = []
    for i, packet in enumerate(DtmfSender(48000).packets("7", 48960, 100)):
        out, found = path.feed(
            9, 2 + i, packet.timestamp, 110, packet.marker, packet.payload, 0.02 + packet.offset
        )
        digits += found
        forwarded += out
    assert [(d.digit, d.duration_ms) for d in digits] == [("7", 100)]
    assert {p.payload_type for p in forwarded} == {101}
    assert len({p.timestamp for p in forwarded}) == 1  # one event, one timestamp (RFC 4733 §2.5.1.2)
    assert max(TelephoneEvent.parse(p.payload).duration for p in forwarded) == 800  # 100 ms at 8000 Hz


def test_codec_choice_keeps_the_operators_order_and_the_web_leg_avoids_transcoding() -> None:
    # the SIP offer: codecs.sip's priority order (issue 67 item 4: [G729, PCMU] offered PCMU first);
    # a codec in use (a re-offer) or the browser's (a late offer's 200) goes ahead of the rest
    assert [c.name for c in choice.sip_offer_codecs(("G729", "PCMU"))] == ["G729", "PCMU"]
    assert [c.name for c in choice.sip_offer_codecs(("PCMU", "PCMA", "opus"), [choice.known("PCMA")])] == [
        "PCMA", "PCMU", "opus",
    ]  # fmt: skip
    prefs = choice.web_preferences([choice.known("G722"), PCMU], ("opus", "PCMU"))
    assert [c.name for c in prefs] == ["PCMU", "opus", "telephone-event", "telephone-event"]
    leg = choice.LegCodecs.of([OPUS], list(choice.WEB_EVENTS), sdp.Direction.SENDRECV)
    assert leg.event is not None and leg.event.clock_rate == 48000


async def test_every_bridge_state_pair() -> None:
    bridge = MediaBridge(BridgeSettings(allocator()), lambda event: None)
    try:
        for old, new in itertools.product(BridgeState, BridgeState):
            bridge._state = old
            if (old, new) in TRANSITIONS:
                bridge._set_state(new)
                assert bridge.state is new
            else:
                with pytest.raises(BridgeError, match=f"from {old.value} to {new.value}"):
                    bridge._set_state(new)
        bridge._state = BridgeState.IDLE
        with pytest.raises(BridgeError, match="answer_from_sip"):
            await bridge.answer_from_sip("v=0\r\n")
    finally:
        await bridge.close()


def test_settings_from_config_reveal_ice_credentials_and_need_a_public_address() -> None:
    from gateway.config import (
        Config,
        IceSection,
        IceServer,
        MediaSection,
        Secret,
        SecretSource,
        SipListen,
        SipSection,
        Transport,
    )
    from gateway.media.bridge_settings import settings_from_config
    from gateway.media.errors import MediaError

    turn = IceServer(("turn:turn.example.org:3478",), "alice", Secret(SecretSource.INLINE, "", "s3cret"))
    wildcard = SipSection(listen=(SipListen(Transport.UDP, "0.0.0.0"),))
    with pytest.raises(MediaError, match="public_address"):
        settings_from_config(Config(sip=wildcard), allocator(), call_id="x")
    config = Config(ice=IceSection(gateway=(turn,)))
    settings = settings_from_config(config, allocator(), call_id="x")
    assert settings.bind_host == "127.0.0.1" and settings.rtp_address().sdp_address == "127.0.0.1"
    assert settings.ice_servers[0].credential == "s3cret" and settings.ice_servers[0].username == "alice"
    assert settings.sip_codecs == ("PCMU", "PCMA", "G722", "opus") and (
        settings.inactivity_timeout,
        settings.hold_timeout,
    ) == (5.0, 15.0)
    public = Config(sip=wildcard, media=MediaSection(public_address=(ipaddress.ip_address("192.0.2.10"),)))
    settings = settings_from_config(public, allocator(), call_id="y")
    assert settings.public_address == "192.0.2.10" and settings.bind_host == "0.0.0.0"
    with pytest.raises(sdp.SdpUnacceptable, match="no IP6 address") as refused:
        settings.rtp_address("IP6")
    assert refused.value.warning == 301


def test_transcoders_chain_keeps_the_tone() -> None:
    from gateway.media.codecs.transcode import Transcoder
    from peers.audio import detect_tone, ulaw_decode

    chain = [Transcoder("PCMU", "opus"), Transcoder("opus", "G722"), Transcoder("G722", "PCMA"),
             Transcoder("PCMA", "PCMU")]  # fmt: skip
    tone = sine(600, seconds=1.0)
    out = bytearray()
    for i in range(50):
        payloads = [ulaw_encode(tone[160 * i : 160 * (i + 1)])]
        for transcoder in chain:
            payloads = [p for payload in payloads for p in transcoder.transcode(payload)]
        out += b"".join(payloads)
    pcm = ulaw_decode(bytes(out))
    assert len(pcm) >= 6000 and detect_tone(pcm[2000:], 8000, 600)
    assert all(t.errors == 0 for t in chain)


def test_the_end_of_a_hold_is_told_once() -> None:
    """``on_skip``: when a held direction is enabled again (the bridge's senders forget their numbering
    then, seqmap.py), not when it is enabled again while enabled."""
    resumed: list[str] = []
    path = MediaPath("web->sip", on_skip=lambda: resumed.append("resumed"))
    path.enabled = True
    assert resumed == []
    path.enabled = False
    path.enabled = False
    assert resumed == [] and not path.enabled
    path.enabled = True
    path.enabled = True
    assert resumed == ["resumed"] and path.enabled


def test_an_event_told_by_sip_info_is_skipped_in_the_numbering() -> None:
    """``dtmf_mode: info``: the browser's RFC 4733 packets become a SIP INFO, not packets to the phone, so
    the sender forgets its numbering after each (``on_skip``): the phone sees no gap where they were."""
    skipped: list[int] = []
    path = MediaPath("web->sip", on_skip=lambda: skipped.append(1))
    path.configure({0: PCMU, 101: TE}, PCMU, None)  # no event payload type towards the phone
    payload = ulaw_encode(sine(600, seconds=0.02))
    assert path.feed(5, 1, 160, 0, True, payload, 0.0)[0]
    digits = []
    for i, packet in enumerate(DtmfSender(8000).packets("5", 320, 100)):
        out, found = path.feed(5, 2 + i, packet.timestamp, 101, packet.marker, packet.payload, 0.02)
        assert out == []
        digits += found
    assert [d.digit for d in digits] == ["5"] and len(skipped) == i + 1


def test_input_forgotten_is_no_loss_when_it_comes_back() -> None:
    """Issue 67 item 1: while a three-way call's mixer takes a leg's packets the path sees none; when
    forwarding resumes their numbers are no gap (nor concealed), and a gap after that counts again."""
    path = _path({0: PCMU, 101: TE}, PCMU)
    payload = ulaw_encode(sine(600, seconds=0.02))
    for seq in range(100, 105):
        path.feed(5, seq, 1000 + 160 * seq, 0, False, payload, seq * 0.02)
    path.forget_input()
    path.feed(5, 400, 1000 + 160 * 400, 0, False, payload, 8.0)  # 295 packets went to the mixer
    assert path.stats().lost == 0
    path.feed(5, 403, 1000 + 160 * 403, 0, False, payload, 8.06)  # 401 and 402 lost
    assert path.stats().lost == 2


def test_a_sip_offers_codecs_sharing_its_event_clock_come_first() -> None:
    """Issue 67 item 5: opus with telephone-event/8000 only, beside G.722 and PCMU (CUCM, snom): the
    8 kHz codecs first, in the offer's order; with events at 48 kHz too, or none, the offer's order."""
    head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    rtpmap = "a=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    allowed = ("PCMU", "G722", "opus")

    def names(formats: str, events: str) -> list[str]:
        text = f"{head}m=audio 4000 RTP/AVP {formats}\r\n{rtpmap}{events}"
        return [c.name for c in choice.offered_by_sip(sdp.parse(text).media[0], allowed)]

    narrow = "a=rtpmap:101 telephone-event/8000\r\n"
    both = narrow + "a=rtpmap:102 telephone-event/48000\r\n"
    assert names("111 9 0 101", narrow) == ["G722", "PCMU", "opus"]
    assert names("111 9 0 101 102", both) == ["opus", "G722", "PCMU"]
    assert names("111 9 0", "") == ["opus", "G722", "PCMU"]
