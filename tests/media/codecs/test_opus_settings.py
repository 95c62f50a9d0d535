"""The Opus encoders' settings for a G.711 source (gateway/media/codecs/opus_settings.py): validation, and both
paths (the Python transcoder here, the fast lane's engine in test_fastpath.py) taking them."""

from __future__ import annotations

import array
from collections.abc import Iterator

import pytest

from gateway.media import fastlane
from gateway.media.codecs import opus_settings
from gateway.media.codecs.opus_settings import DEFAULT_OPUS_COMPLEXITY, OpusEncoderSettings
from gateway.media.codecs.transcode import Transcoder
from gateway.media.fastlane import native
from peers.audio import G711, detect_tone, sine
from peers.binaries import unavailable


@pytest.fixture
def restore() -> Iterator[None]:
    saved = opus_settings.current()
    yield
    opus_settings.configure(saved)


def test_defaults_are_complexity_5_without_fec() -> None:
    assert OpusEncoderSettings() == OpusEncoderSettings(DEFAULT_OPUS_COMPLEXITY, inband_fec=False)
    assert DEFAULT_OPUS_COMPLEXITY == 5
    assert OpusEncoderSettings().ffmpeg_options() == {"compression_level": "5", "fec": "0", "dtx": "0"}
    assert OpusEncoderSettings(10, True).ffmpeg_options()["fec"] == "1"


@pytest.mark.parametrize("complexity", [-1, 11, 100])
def test_complexity_out_of_range_is_refused(complexity: int) -> None:
    with pytest.raises(ValueError, match="0-10"):
        OpusEncoderSettings(complexity)


@pytest.mark.parametrize("bad", [True, "5", 5.0, None])
def test_complexity_of_another_type_is_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="integer"):
        OpusEncoderSettings(bad)  # type: ignore[arg-type]


def test_fec_must_be_a_boolean() -> None:
    with pytest.raises(TypeError, match="boolean"):
        OpusEncoderSettings(5, 1)  # type: ignore[arg-type]


def test_the_engine_refuses_a_complexity_out_of_range() -> None:
    if not fastlane.available():
        unavailable("the fast lane is not built")
    with pytest.raises(ValueError, match="0-10"):
        native.set_opus_encoder(11, False)
    with pytest.raises(ValueError, match="0-10"):
        native.set_opus_encoder(-1, False)
    native.set_opus_encoder(opus_settings.current().complexity, False)


def _encode_tone(complexity: int) -> list[bytes]:
    opus_settings.configure(OpusEncoderSettings(complexity))
    g711 = G711("pcm_mulaw")
    # a voiced sound: a 200 Hz fundamental and its harmonics up to 3.4 kHz, as a G.711 phone sends
    waves = [sine(f, 8000, seconds=1.0, amplitude=1500) for f in range(200, 3401, 200)]
    voice = array.array("h", (max(-32768, min(32767, sum(samples))) for samples in zip(*waves, strict=True)))
    there = Transcoder("PCMU", "opus")
    return [p for i in range(0, 8000, 160) for p in there.transcode(g711.encode(voice[i : i + 160]))]


def test_the_python_transcoder_takes_the_complexity(restore: None) -> None:
    # the same input coded at complexity 0 and 10: different bitstreams (the setting reached libopus)
    assert _encode_tone(0) != _encode_tone(10)
    assert _encode_tone(10) == _encode_tone(10)  # and libopus is deterministic, so the difference is it


@pytest.mark.parametrize("complexity", [0, 5])
def test_a_tone_survives_g711_to_opus_and_back_at_low_complexity(restore: None, complexity: int) -> None:
    opus_settings.configure(OpusEncoderSettings(complexity))
    g711 = G711("pcm_mulaw")
    tone = sine(1000, 8000, seconds=1.0)
    there, back = Transcoder("PCMU", "opus"), Transcoder("opus", "PCMU")
    opus = [p for i in range(0, 8000, 160) for p in there.transcode(g711.encode(tone[i : i + 160]))]
    out = [p for packet in opus for p in back.transcode(packet)]
    pcm = g711.decode(b"".join(out))
    assert detect_tone(pcm[1600:], 8000, 1000, threshold=0.9)
    assert not detect_tone(pcm[1600:], 8000, 1500)
