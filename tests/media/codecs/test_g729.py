"""G.729 through libbcg729: tones survive it, payload framing, SID and erasure, the transcoder to and from
Opus, the mixer's codec, and what happens to the SIP codec list when the library does not load."""

from __future__ import annotations

import array

import pytest

from gateway.media.codecs import g729
from gateway.media.codecs.codec_choice import KNOWN
from gateway.media.codecs.g729 import G729Decoder, G729Encoder, G729Error
from gateway.media.codecs.opus_decoder import OpusDecoder
from gateway.media.codecs.packetize import Packetizer
from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from gateway.media.codecs.transcode import Transcoder
from gateway.media.forward import MediaPath
from peers.audio import detect_tone, encode_tone, sine, tone_ratio
from peers.binaries import unavailable


@pytest.fixture(autouse=True)
def _libbcg729() -> None:
    if not g729.available():  # a failure under CI=true, where scripts/system-packages.txt installs it
        unavailable("libbcg729 (Debian libbcg729-0) not installed")


def _frames(samples: array.array[int], size: int = 160) -> list[bytes]:
    return [samples[i : i + size].tobytes() for i in range(0, len(samples) - size + 1, size)]


def test_a_tone_survives_g729_and_a_20_ms_packet_is_20_bytes() -> None:
    encoder, decoder = G729Encoder(), G729Decoder()
    payloads = [encoder.encode(pcm) for pcm in _frames(sine(440, seconds=1.0))]
    assert {len(p) for p in payloads} == {20}  # two 10-byte frames, no SID (no VAD)
    out = array.array("h", b"".join(decoder.decode(p) for p in payloads))
    assert len(out) == 8000
    assert detect_tone(out[2000:6000], 8000, 440, threshold=0.8)
    assert tone_ratio(out[2000:6000], 8000, 1000) < 0.01
    encoder.close()
    encoder.close()  # idempotent
    with pytest.raises(G729Error):
        encoder.encode(bytes(160))


def test_payload_framing_sid_and_bad_lengths() -> None:
    encoder, decoder = G729Encoder(), G729Decoder()
    speech = encoder.encode(sine(440, seconds=0.03).tobytes())  # 30 ms: three frames
    assert len(speech) == 30 and len(decoder.decode(speech)) == 2 * 240
    with_sid = decoder.decode(speech[:10] + b"\x6a\x40")  # a frame, then an Annex B SID (2 bytes)
    assert len(with_sid) == 2 * 160 and decoder.sid_frames == 1
    for bad in (b"\x01", speech[:15], speech[:10] + b"\x00\x00\x00"):
        with pytest.raises(G729Error, match="10-byte frames"):
            decoder.decode(bad)
    with pytest.raises(G729Error, match="whole 10 ms frames"):
        encoder.encode(bytes(100))


def test_a_lost_frame_is_concealed_by_the_decoder_not_silenced() -> None:
    encoder, decoder = G729Encoder(), G729Decoder()
    payloads = [encoder.encode(pcm) for pcm in _frames(sine(440, seconds=0.5))]
    for payload in payloads[:20]:
        decoder.decode(payload)
    concealed = array.array("h", decoder.conceal(160))  # one 20 ms packet lost
    assert len(concealed) == 160
    assert detect_tone(concealed, 8000, 440, threshold=0.5)  # the voice goes on, not silence


def test_transcoder_carries_g729_to_opus_and_opus_to_g729() -> None:
    to_opus, to_g729 = Transcoder("G729", "opus"), Transcoder("opus", "G729")
    encoder = G729Encoder()
    opus_out = [p for pcm in _frames(sine(440, seconds=1.0)) for p in to_opus.transcode(encoder.encode(pcm))]
    assert len(opus_out) >= 48 and to_opus.errors == 0
    opus = OpusDecoder(8000)
    heard = array.array("h", b"".join(opus.decode(p) for p in opus_out))
    assert detect_tone(heard[2000:6000], 8000, 440, threshold=0.8)
    g729_out = [p for p in encode_tone(1000, "opus") for p in to_g729.transcode(p)]
    assert {len(p) for p in g729_out} == {20} and len(g729_out) >= 48
    decoder = G729Decoder()
    back = array.array("h", b"".join(decoder.decode(p) for p in g729_out))
    assert detect_tone(back[2000:6000], 8000, 1000, threshold=0.8)
    assert to_opus.conceals and len(to_opus.conceal(2)) == 2  # two lost packets -> two Opus packets
    assert to_opus.transcode(b"\x01\x02\x03") == [] and to_opus.errors == 1  # not G.729: counted


def test_the_mixer_carries_g729_at_8_khz_only() -> None:
    codec = PcmCodec("G729", PcmFormat(8000))
    encoder = G729Encoder()
    pcm = b"".join(codec.decode(encoder.encode(frame)) for frame in _frames(sine(440, seconds=0.5)))
    assert detect_tone(array.array("h", pcm)[800:], 8000, 440, threshold=0.8)
    assert [len(p) for p in codec.encode(bytes(320))] == [20]
    assert codec.decode(b"\x01") == b"" and codec.errors == 1
    codec.close()
    with pytest.raises(Exception, match="8000 Hz only"):
        PcmCodec("G729", PcmFormat(16000))


def test_without_the_library_g729_is_dropped_from_the_sip_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert g729.usable_sip_codecs(["PCMU", "G729"]) == ("PCMU", "G729")
    assert g729.library_path() is not None
    monkeypatch.setattr(g729, "_library", lambda: None)  # as on a host without libbcg729-0
    assert not g729.available() and g729.library_path() is None
    assert g729.usable_sip_codecs(["G729", "PCMU", "opus"]) == ("PCMU", "opus")
    assert g729.usable_sip_codecs(["PCMU"]) == ("PCMU",)
    with pytest.raises(G729Error, match=r"codecs\.sip: only G729"):
        g729.usable_sip_codecs(["G729"])
    with pytest.raises(G729Error, match="libbcg729-0"):
        G729Encoder()


def test_g729_is_cut_between_its_frames_for_a_peer_that_wants_40_ms() -> None:
    packetizer = Packetizer(40, ticks_per_byte=8)
    assert packetizer.size == 40  # four 10-byte frames
    out = [p for n in range(4) for p in packetizer.push(bytes([n]) * 20, 1000 + 160 * n, n == 0)]
    assert out == [(b"\x00" * 20 + b"\x01" * 20, 1000, True), (b"\x02" * 20 + b"\x03" * 20, 1320, False)]
    assert packetizer.push(b"\x04" * 20, 1640) == []
    assert packetizer.push(b"\x05" * 20, 2120) == [(b"\x04" * 20, 1640, False)]  # a gap: sent as it is
    path = MediaPath("web->sip")
    opus, g729_codec = KNOWN["opus"], KNOWN["g729"]
    path.configure({111: opus}, g729_codec, None, 40)
    sizes = []
    for n, payload in enumerate(encode_tone(1000, "opus", frames=10)):
        out_packets, _ = path.feed(1, 1 + n, 960 * n, 111, False, payload, 0.02 * n)
        sizes += [len(p.payload) for p in out_packets]
    assert sizes and set(sizes) == {40}  # 40 ms of G.729 per packet
    assert path.lane() is None
