"""The audio stream's sans-I/O part (gateway/media/streaming): each leg's payloads decoded at the
stream's rate (G.711 by table, Opus by libopus, RED unwrapped), the app's audio mixed into a forwarded
payload, the 20 ms stereo frames (left: web, right: SIP) and their bounds. Tones are checked with
Goertzel (peers/audio.py), not bytes."""

from __future__ import annotations

from array import array

import pytest

import sdp
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from gateway.media.events import Leg
from gateway.media.rtp import red
from gateway.media.rtp.packet import RtpPacket
from gateway.media.streaming import pcm
from gateway.media.streaming.frames import Encoding, Inject, StreamFrames
from gateway.media.streaming.leg_audio import LegAudio
from gateway.media.streaming.tap import StreamTap
from peers.audio import detect_tone, encode_tone, sine, ulaw_decode

PCMU = sdp.Codec(0, "PCMU", 8000)
OPUS = sdp.Codec(111, "opus", 48000, 2)
RED = sdp.Codec(63, "red", 48000, 2)
EVENT = sdp.Codec(101, "telephone-event", 8000)
SIP = LegCodecs.of([PCMU], [EVENT], sdp.Direction.SENDRECV)
WEB = LegCodecs.of([OPUS], [], sdp.Direction.SENDRECV, redundancy=[RED])


def _nothing(samples: int) -> bytes:
    return b""


def _samples(data: bytes) -> array[int]:
    return pcm.samples(data)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_pcmu_is_decoded_at_the_stream_rate(rate: int) -> None:
    leg = LegAudio(rate, name="sip")
    heard = b"".join(leg.hear(0, p, SIP, _nothing).pcm for p in encode_tone(440, "pcmu", 25))
    assert len(heard) == 2 * rate // 2  # half a second
    assert detect_tone(_samples(heard), rate, 440)
    assert not detect_tone(_samples(heard), rate, 1000)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_opus_and_red_around_it_are_decoded(rate: int) -> None:
    leg = LegAudio(rate, name="web")
    packets = encode_tone(1000, "opus", 25)
    plain = b"".join(leg.hear(111, p, WEB, _nothing).pcm for p in packets[:12])
    wrapped = [
        red.pack(red.RedBlock(111, 960, p), [red.RedBlock(111, 0, packets[i - 1])])
        for i, p in enumerate(packets[12:], 12)
    ]
    in_red = b"".join(leg.hear(63, p, WEB, _nothing).pcm for p in wrapped)
    assert detect_tone(_samples(plain)[rate // 50 :], rate, 1000)
    assert detect_tone(_samples(in_red), rate, 1000)


def test_events_and_unknown_payloads_pass_untouched() -> None:
    leg = LegAudio(8000, name="sip")
    assert leg.hear(101, b"\x01\x0a\x00\xa0", SIP, _nothing).pcm == b""
    assert leg.hear(9, b"\x00" * 160, SIP, _nothing).payload == b"\x00" * 160  # no G.722 negotiated
    assert leg.hear(0, b"\xff" * 160, None, _nothing).pcm == b""  # nothing negotiated yet


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_apps_audio_is_mixed_into_a_pcmu_payload(rate: int) -> None:
    leg = LegAudio(rate, name="web")
    app = sine(700, rate, 0.5, amplitude=6000).tobytes()
    position = 0

    def injected(samples: int) -> bytes:
        nonlocal position
        chunk = app[position : position + 2 * samples]
        position += 2 * samples
        return chunk

    out = [leg.hear(0, p, SIP, injected) for p in encode_tone(440, "pcmu", 25)]
    assert position == len(app)  # the packets took the app's half second
    assert all(h.payload_type == 0 and len(h.payload) == 160 for h in out)
    forwarded = ulaw_decode(b"".join(h.payload for h in out))
    assert detect_tone(forwarded, 8000, 700, threshold=0.2)
    assert detect_tone(forwarded, 8000, 440, threshold=0.2)
    own = _samples(b"".join(h.pcm for h in out))
    assert detect_tone(own, rate, 440) and not detect_tone(own, rate, 700, threshold=0.1)  # the leg's own


def test_the_apps_audio_is_mixed_into_opus() -> None:
    leg = LegAudio(16000, name="web")
    app = sine(700, 16000, 1.0, amplitude=6000).tobytes()
    feed = iter(range(0, len(app), 640))
    out = [
        leg.hear(111, p, WEB, lambda n: app[next(feed, len(app)) :][: 2 * n])
        for p in encode_tone(1000, "opus")
    ]
    assert all(h.payload_type == 111 for h in out)
    decoder = PcmCodec("opus", PcmFormat(16000))
    decoded = _samples(b"".join(decoder.decode(h.payload) for h in out[5:]))
    assert detect_tone(decoded, 16000, 700, threshold=0.2)
    assert detect_tone(decoded, 16000, 1000, threshold=0.2)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_frames_put_the_web_user_left_and_the_sip_party_right(rate: int) -> None:
    frames = StreamFrames(rate)
    size = pcm.frame_bytes(rate)
    web, sip = sine(1000, rate, 0.5).tobytes(), sine(440, rate, 0.5).tobytes()
    stereo = b""
    for start in range(0, len(web), size):
        frames.push(Leg.WEB, web[start : start + size])
        frames.push(Leg.SIP, sip[start : start + size])
        (frame,) = frames.frames()
        assert len(frame) == 2 * size
        stereo += frame
    both = _samples(stereo)
    left, right = both[0::2], both[1::2]
    assert detect_tone(left, rate, 1000) and not detect_tone(left, rate, 440, threshold=0.1)
    assert detect_tone(right, rate, 440) and not detect_tone(right, rate, 1000, threshold=0.1)
    assert frames.sent == 25


def test_a_silent_leg_is_silence_and_a_leg_ahead_is_bounded() -> None:
    frames = StreamFrames(8000)
    frames.push(Leg.SIP, sine(440, 8000, 1.0).tobytes())  # a second at once: ahead of the clock
    (frame,) = frames.frames()
    both = _samples(frame)
    assert not any(both[0::2]) and any(both[1::2])
    assert frames.dropped > 0
    taken = 1 + sum(1 for _ in iter(lambda: any(_samples(frames.frames()[0])[1::2]), False))
    assert taken * 20 <= 120  # what was kept: at most MAX_QUEUED_MS


def test_opus_frames_name_their_channel() -> None:
    frames = StreamFrames(16000, Encoding.OPUS)
    out: list[bytes] = []
    for _ in range(10):
        frames.push(Leg.WEB, sine(1000, 16000, 0.02).tobytes())
        out += frames.frames()
    assert out and all(f[:1] == b"\x00" for f in out)  # the SIP party sent nothing: no frame of it
    decoder = PcmCodec("opus", PcmFormat(16000))
    assert any(decoder.decode(f[1:]) for f in out)


def test_the_apps_frames_queue_per_side_and_odd_bytes_are_refused() -> None:
    frames = StreamFrames(8000, inject=Inject.BOTH)
    assert Inject.BOTH.sides() == (Leg.SIP, Leg.WEB) and Inject.NONE.sides() == ()
    frames.inject(b"\x01\x00" * 200)
    assert frames.injected(Leg.SIP, 160) == b"\x01\x00" * 160
    assert frames.injected(Leg.WEB, 300) == b"\x01\x00" * 200
    assert frames.injected(Leg.SIP, 160) == b"\x01\x00" * 40
    assert frames.injected(Leg.SIP, 160) == b""
    with pytest.raises(ValueError, match="16-bit samples, got 3 bytes"):
        frames.inject(b"abc")
    assert StreamFrames(8000).injected(Leg.SIP, 160) == b""  # inject none: nothing kept


def test_bad_rates_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="sample_rate must be one of"):
        StreamFrames(44100)
    with pytest.raises(ValueError, match="sample_rate must be one of"):
        LegAudio(48000, name="web")


def test_the_tap_hears_both_legs_and_mixes_into_the_sip_partys_audio() -> None:
    frames = StreamFrames(8000, inject=Inject.WEB)
    tap = StreamTap(frames, call_id="c-1")
    frames.inject(sine(700, 8000, 0.5, amplitude=6000).tobytes())
    packets = encode_tone(440, "pcmu", 25)
    forwarded = []
    for seq, payload in enumerate(packets):
        packet = RtpPacket(0, seq, seq * 160, 1234, payload)
        out = tap.sip(packet, SIP)
        assert (out.sequence_number, out.ssrc, out.payload_type) == (seq, 1234, 0)
        forwarded.append(out.payload)
        payload_type, same = tap.web(101, b"\x01\x0a\x00\xa0", WEB)  # not audio: untouched
        assert (payload_type, same) == (101, b"\x01\x0a\x00\xa0")
    assert detect_tone(ulaw_decode(b"".join(forwarded)), 8000, 700, threshold=0.2)
    right = _samples(b"".join(frames.frames()[0] for _ in range(5)))[1::2]
    assert detect_tone(right, 8000, 440)
    tap.close()
