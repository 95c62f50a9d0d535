"""The recorder without a network (issue 37 item 3): both legs' payloads decoded and placed on one clock,
each channel's tone where it was sent, silence for gaps and paused spans, the sidecar's fields, every
state transition, and the file written by the writer thread (WAV and Ogg/Opus, read back by PyAV)."""

from __future__ import annotations

import array
import json
import math
import wave
from pathlib import Path

import av
import pytest

import sdp
from gateway.media.codecs.transcode import Transcoder, g711_tables
from gateway.media.recording.recorder import CallFacts, CallRecorder, RecorderSettings
from gateway.media.recording.timeline import (
    TRANSITIONS,
    LegClock,
    Recording,
    RecordingAction,
    RecordingError,
    RecordingState,
    StereoTimeline,
)

PCMU = sdp.Codec(0, "PCMU", 8000)
OPUS = sdp.Codec(111, "opus", 48000, 2)
TONE_WEB, TONE_SIP = 1000.0, 440.0


def _tone(freq: float, start: int, count: int, rate: int = 8000) -> bytes:
    return array.array(
        "h", (int(8000 * math.sin(2 * math.pi * freq * (start + k) / rate)) for k in range(count))
    ).tobytes()


def _pcmu(pcm: bytes) -> bytes:
    table = g711_tables("pcm_mulaw").encode
    return bytes(table[s & 0xFFFF] for s in array.array("h", pcm))


def _power(samples: list[int], freq: float, rate: int) -> float:
    """Goertzel: the power of ``freq`` in ``samples``, relative to their energy."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    energy = sum(x * x for x in samples) or 1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (energy * len(samples) / 2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _recorder(tmp_path: Path, fmt: str = "wav") -> tuple[CallRecorder, Clock]:
    clock = Clock()
    facts = CallFacts("call-1", "outbound", "on_demand", "alice", "sip:alice@x", "sip:7001@x", ("abc@h",))
    return CallRecorder(RecorderSettings(tmp_path, fmt, 8000), facts, clock=clock, wall=lambda: 1.7e9), clock


ENCODERS: dict[int, Transcoder] = {}


def _feed_both(recorder: CallRecorder, clock: Clock, seconds: float, first: int = 0) -> None:
    """20 ms packets of both legs: the web leg Opus (1 kHz, no header: as the audio filter gives it; one
    encoder per recorder, as one browser sends one stream), the SIP leg PCMU (440 Hz, SSRC, timestamp)."""
    encoder = ENCODERS.setdefault(id(recorder), Transcoder("pcmu", "opus"))
    for i in range(first, first + int(seconds * 50)):
        pcm_web, pcm_sip = _tone(TONE_WEB, i * 160, 160), _tone(TONE_SIP, i * 160, 160)
        for payload in encoder.transcode(_pcmu(pcm_web)):
            recorder.feed(0, {111: OPUS}, None, None, 111, payload, clock.now)
        recorder.feed(1, {0: PCMU}, 0x1234, i * 160, 0, _pcmu(pcm_sip), clock.now + 0.003)
        clock.now += 0.02


def _channels(path: Path) -> tuple[list[int], list[int], int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        frames = array.array("h", wav.readframes(wav.getnframes()))
        return list(frames[0::2]), list(frames[1::2]), wav.getframerate()


def test_every_state_and_action_pair_is_allowed_or_refused_by_name() -> None:
    for state in RecordingState:
        for action in RecordingAction:
            recording = Recording("c", state)
            if (state, action) in TRANSITIONS:
                assert recording.apply(action) is TRANSITIONS[state, action]
            else:
                with pytest.raises(
                    RecordingError, match=f"cannot {action.value} a recording that is {state.value}"
                ):
                    recording.apply(action)


def test_timeline_interleaves_fills_gaps_with_silence_and_drops_what_was_given_out() -> None:
    timeline = StereoTimeline(8000)
    timeline.put(0, 0, array.array("h", [1, 2]).tobytes())
    timeline.put(1, 3, array.array("h", [7]).tobytes())
    assert array.array("h", timeline.take(4)).tolist() == [1, 0, 2, 0, 0, 0, 0, 7]
    timeline.put(0, 2, array.array("h", [5, 6, 9]).tobytes())  # 2 samples late: only the third kept
    assert timeline.late == 2
    assert array.array("h", timeline.take(6)).tolist() == [9, 0, 0, 0]


def test_leg_clock_follows_timestamps_and_reanchors_on_a_jump() -> None:
    clock = LegClock(8000, resync=1600)
    assert clock.position(1, 1000, 8000, 0, 160) == 0
    assert clock.position(1, 1160, 8000, 200, 160) == 160  # jitter: the timestamp decides
    assert clock.position(1, 1000 + 80000, 8000, 400, 160) == 400  # 10 s jump: the arrival decides
    assert clock.position(None, None, 8000, 1000, 160) == 1000
    assert clock.position(None, None, 8000, 1100, 160) == 1160  # end to end while close


def test_both_legs_land_in_their_channel_with_the_right_duration_and_sidecar(tmp_path: Path) -> None:
    recorder, clock = _recorder(tmp_path)
    recorder.apply(RecordingAction.START)
    _feed_both(recorder, clock, 2.0)
    recorder.apply(RecordingAction.STOP)
    recorder.join(5)
    [path] = map(Path, recorder.files)
    assert path.name == "call-1-1.wav" and path.parent.name == "2023-11-14"
    left, right, rate = _channels(path)
    assert rate == 8000 and len(left) == pytest.approx(16000, abs=80)
    middle = slice(4000, 12000)
    assert _power(left[middle], TONE_WEB, rate) > 0.8 > _power(left[middle], TONE_SIP, rate) * 10
    assert _power(right[middle], TONE_SIP, rate) > 0.8 > _power(right[middle], TONE_WEB, rate) * 10
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["call_id"] == "call-1" and sidecar["sip_call_ids"] == ["abc@h"]
    assert (sidecar["user"], sidecar["from"], sidecar["to"]) == ("alice", "sip:alice@x", "sip:7001@x")
    assert sidecar["channels"] == {"left": "web", "right": "sip"}
    assert sidecar["codecs"] == {"web": "opus", "sip": "PCMU"}
    assert sidecar["spans"] == [[0.0, 2.0]] and sidecar["duration"] == 2.0
    assert sidecar["start_time"] == 1.7e9 and sidecar["end_time"] == 1.7e9 + 2.0


def test_a_pause_is_silence_and_a_second_start_a_second_file(tmp_path: Path) -> None:
    recorder, clock = _recorder(tmp_path)
    recorder.apply(RecordingAction.START)
    _feed_both(recorder, clock, 1.0)
    recorder.apply(RecordingAction.PAUSE)
    _feed_both(recorder, clock, 1.0, first=50)
    recorder.apply(RecordingAction.RESUME)
    _feed_both(recorder, clock, 1.0, first=100)
    recorder.apply(RecordingAction.STOP)
    _feed_both(recorder, clock, 0.5, first=150)  # stopped: nothing
    recorder.apply(RecordingAction.START)
    _feed_both(recorder, clock, 0.5, first=175)
    recorder.close()
    recorder.join(5)
    first, second = map(Path, recorder.files)
    left, right, rate = _channels(first)
    assert len(left) == pytest.approx(24000, abs=80)
    for channel, tone in ((left, TONE_WEB), (right, TONE_SIP)):
        assert _power(channel[2000:6000], tone, rate) > 0.8
        assert max(map(abs, channel[9000:15000])) == 0  # paused
        assert _power(channel[18000:22000], tone, rate) > 0.8
    assert json.loads(first.with_suffix(".json").read_text())["spans"] == [[0.0, 1.0], [2.0, 3.0]]
    assert second.name == "call-1-2.wav" and len(_channels(second)[0]) == pytest.approx(4000, abs=80)


def test_ogg_opus_is_stereo_and_as_long_as_the_call(tmp_path: Path) -> None:
    recorder, clock = _recorder(tmp_path, "ogg")
    recorder.apply(RecordingAction.START)
    _feed_both(recorder, clock, 1.0)
    recorder.close()
    recorder.join(5)
    [path] = recorder.files
    assert path.endswith(".ogg")
    with av.open(path) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name in ("libopus", "opus") and stream.codec_context.channels == 2
        samples = sum(frame.samples for frame in container.decode(stream))
        assert samples / stream.codec_context.sample_rate == pytest.approx(1.0, abs=0.05)
    assert json.loads(Path(path).with_suffix(".json").read_text())["format"] == "ogg"


def test_an_unknown_format_and_an_undecodable_codec_are_said(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="format must be one of"):
        CallRecorder(RecorderSettings(tmp_path, "mp3"), CallFacts("c", "inbound", "always"))
    recorder, clock = _recorder(tmp_path)
    recorder.apply(RecordingAction.START)
    recorder.feed(1, {97: sdp.Codec(97, "iLBC", 8000)}, 1, 0, 97, b"\x00" * 38, clock.now)
    assert recorder.undecodable == 1
    recorder.close()
