"""The room mixer (gateway/media/codecs/mixer.py) without a network: tones in, each participant's mix out.

A SIP party (PCMU) and two browsers (Opus, group "browsers") each send their own tone: the SIP party
must hear both browsers' tones and not its own; each browser the SIP party's tone only (the browsers
hear each other peer to peer). Then: silence for a participant with nothing queued, clipping, the queue
bound, the participant limit, removal, and a closed mixer."""

from __future__ import annotations

import array

import pytest

from gateway.media.codecs.mixer import Mixer, MixerError
from gateway.media.codecs.opus_decoder import OpusDecoder, opus_available
from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from peers.audio import alaw_decode, detect_tone, encode_tone, sine, tone_ratio, ulaw_decode, ulaw_encode
from peers.binaries import in_ci, unavailable

FRAMES = 50


class Sink:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.timestamps: list[int] = []

    def __call__(self, payload: bytes, timestamp: int) -> None:
        self.payloads.append(payload)
        self.timestamps.append(timestamp)


def _pcmu_pcm(sink: Sink) -> array.array[int]:
    out = array.array("h")
    for payload in sink.payloads:
        out.extend(ulaw_decode(payload))
    return out


def _opus_pcm(sink: Sink) -> array.array[int]:
    decoder = OpusDecoder(48000)
    out = array.array("h")
    for payload in sink.payloads:
        out.frombytes(decoder.decode(payload))
    decoder.close()
    return out


def test_sip_party_hears_browsers_and_browsers_hear_the_sip_party() -> None:
    if not opus_available():
        assert not in_ci(), "CI must have libopus (the fast lane and aiortc's opus use it)"
        unavailable("no libopus")
    mixer = Mixer(rate=8000, max_participants=4)
    phone, alice, bob = Sink(), Sink(), Sink()
    mixer.add("phone", "pcmu", phone)
    mixer.add("alice", "opus", alice, group="browsers")
    mixer.add("bob", "opus", bob, group="browsers")
    alice_tone, bob_tone = encode_tone(1000, "opus", FRAMES), encode_tone(700, "opus", FRAMES)
    pcm = sine(440, 8000, FRAMES * 0.02)
    for index in range(FRAMES):
        mixer.push("phone", ulaw_encode(pcm[index * 160 : (index + 1) * 160]))
        mixer.push("alice", alice_tone[index])
        mixer.push("bob", bob_tone[index])
        mixer.tick()
    heard = _pcmu_pcm(phone)[1600:]  # past the Opus decoders' start
    assert tone_ratio(heard, 8000, 1000) > 0.2 and tone_ratio(heard, 8000, 700) > 0.2
    assert tone_ratio(heard, 8000, 440) < 0.02  # not its own tone
    for sink in (alice, bob):
        decoded = _opus_pcm(sink)[48000 // 5 :]
        assert detect_tone(decoded, 48000, 440, threshold=0.5)
        assert tone_ratio(decoded, 48000, 1000) < 0.02 and tone_ratio(decoded, 48000, 700) < 0.02
        assert sink.timestamps[1] - sink.timestamps[0] == 960  # Opus' RTP clock is 48 kHz
    assert phone.timestamps[:3] == [0, 160, 320] and len(phone.payloads) == FRAMES
    mixer.close()


def test_silence_clipping_and_the_queue_bound() -> None:
    mixer = Mixer(rate=8000, max_participants=3, max_queued=2)
    a, b, c = Sink(), Sink(), Sink()
    mixer.add("a", "pcmu", a)
    mixer.add("b", "pcmu", b)
    mixer.add("c", "pcma", c)
    mixer.tick()  # nobody sent: everyone hears silence, in its own codec
    assert ulaw_decode(a.payloads[0]).tolist() == [0] * 160
    loud = array.array("h", [30000] * 160)
    mixer.push("a", ulaw_encode(loud))
    mixer.push("b", ulaw_encode(loud))
    mixer.tick()
    assert max(alaw_decode(c.payloads[1])) >= 32000  # 60000 clipped to 16 bits (c hears A-law)
    assert ulaw_decode(a.payloads[1])[0] == ulaw_decode(ulaw_encode(loud))[0]  # b's frame alone
    for _ in range(5):  # a burst: only the newest max_queued frames are kept
        mixer.push("a", ulaw_encode(loud))
    assert (mixer.frames_in("a"), mixer.frames_in("b"), mixer.frames_in("c")) == (6, 1, 0)  # each given
    assert mixer.frames_in("nobody") == 0
    for _ in range(3):
        mixer.tick()
    assert [max(ulaw_decode(p)) for p in b.payloads[2:]] == [max(ulaw_decode(ulaw_encode(loud)))] * 2 + [0]


def test_limits_removal_and_close() -> None:
    mixer = Mixer(rate=8000, max_participants=2)
    sink = Sink()
    mixer.add("a", "pcmu", sink)
    with pytest.raises(MixerError, match="already"):
        mixer.add("a", "pcmu", sink)
    mixer.add("b", "pcmu", sink)
    with pytest.raises(MixerError, match="full"):
        mixer.add("c", "pcmu", sink)
    mixer.remove("b")
    mixer.remove("b")  # idempotent
    mixer.push("b", b"\xff" * 160)  # a late packet of a participant gone: dropped
    assert mixer.participants == ("a",) and "b" not in mixer
    mixer.close()
    with pytest.raises(MixerError, match="closed"):
        mixer.tick()
    with pytest.raises(ValueError, match="max_participants"):
        Mixer(max_participants=1)


def test_pcm_codec_refuses_what_it_cannot_mix() -> None:
    with pytest.raises(ValueError, match="rate"):
        PcmFormat(44100)
    with pytest.raises(Exception, match="8000"):
        PcmCodec("pcmu", PcmFormat(48000))
    with pytest.raises(Exception, match="no transcoder"):
        PcmCodec("speex", PcmFormat(8000))
    codec = PcmCodec("pcmu", PcmFormat(8000))
    assert codec.decode(b"") == b""
    assert len(codec.decode(b"\xff" * 80)) == 160  # a 10 ms packet: half a frame
