"""Loss concealment in transcoding: G.711 Appendix I, Opus FEC and PLC, and a direction that reorders,
conceals and keeps the input's timeline (gateway/media/forward.py with gateway/media/rtp/reorder.py)."""

from __future__ import annotations

import array
import fractions
import functools
import itertools
import math

from av import AudioFrame, CodecContext

from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.g711_plc import G711Concealer
from gateway.media.codecs.opus_decoder import OpusDecoder
from gateway.media.codecs.transcode import Transcoder
from gateway.media.forward import MediaPath
from peers.audio import rms, ulaw_encode

PCMU = choice.known("PCMU")
OPUS = choice.known("opus")


def speechlike(rate: int, seconds: float) -> array.array[int]:
    """A voiced, speech-like signal: a gliding 110-170 Hz pitch with harmonics, syllables at 4 Hz."""
    out = array.array("h")
    phase = 0.0
    for n in range(int(rate * seconds)):
        t = n / rate
        f0 = 140 + 30 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * f0 / rate
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 4 * t)
        value = sum(math.sin(k * phase) / k for k in range(1, 12) if k * f0 < rate / 2 - 300)
        out.append(int(6000 * envelope * value))
    return out


def _samples(pcm: bytes) -> array.array[int]:
    out = array.array("h")
    out.frombytes(pcm)
    return out


@functools.cache
def opus_packets(frames: int = 50, fec: bool = True) -> tuple[bytes, ...]:
    """20 ms Opus packets of ``speechlike`` at 48 kHz, VOIP at 32 kbit/s, with in-band FEC (LBRR) as a
    browser sends it when it was asked for it (useinbandfec=1) and sees loss."""
    encoder = CodecContext.create("libopus", "w")
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "mono", 48000
    encoder.bit_rate = 32000
    encoder.options = {"application": "voip", "fec": "1" if fec else "0", "packet_loss": "10"}
    encoder.time_base = fractions.Fraction(1, 48000)
    signal = speechlike(48000, 0.02 * (frames + 3))
    out: list[bytes] = []
    for index in range(frames + 3):
        frame = AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(signal[960 * index : 960 * (index + 1)].tobytes())
        frame.sample_rate, frame.pts = 48000, index * 960
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return tuple(out[:frames])


def _error(a: array.array[int], b: array.array[int]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a))


def test_g711_concealment_continues_the_pitch_and_fades_out() -> None:
    signal = speechlike(8000, 0.2)
    plc = G711Concealer()
    for i in range(5):
        plc.good(signal[160 * i : 160 * (i + 1)].tobytes())
    concealed = _samples(plc.conceal(160))
    real = signal[800:960]
    # energy continuity: the concealed frame is about as loud as the speech around it, and like it
    assert 0.5 < rms(concealed) / rms(real) < 1.5
    assert _error(concealed[:80], real[:80]) < rms(real[:80])  # closer than silence would be
    later = [_samples(plc.conceal(160)) for _ in range(3)]
    assert rms(later[0]) < rms(concealed)  # attenuated from the second 10 ms (Appendix I §I.2.4)
    assert rms(later[2]) == 0  # silent beyond 60 ms
    # the next good frame is taken as it is beyond the overlap-add
    good = signal[1600:1760]
    assert _samples(plc.good(good.tobytes()))[40:] == good[40:]


def test_g711_concealment_joins_the_next_frame_when_it_is_known() -> None:
    signal = speechlike(8000, 0.2)
    plc = G711Concealer()
    for i in range(5):
        plc.good(signal[160 * i : 160 * (i + 1)].tobytes())
    following = signal[1120:1280]  # frames 5 and 6 lost, 7 known: the gap ends on it
    gap = _samples(plc.conceal(320, following.tobytes()))
    real = signal[800:1120]
    assert 0.5 < rms(gap) / rms(real) < 1.5
    # no click where the gap meets the next frame: no step steeper than the speech's own
    step = abs(gap[-1] - following[0])
    assert step < max(abs(b - a) for a, b in itertools.pairwise(signal[1100:1280])), step
    assert _samples(plc.good(following.tobytes())) == following  # joined: nothing to overlap-add
    # a 100 ms burst is bridged as well, not faded to silence in the middle (G.711 Appendix I alone would)
    burst = _samples(plc.conceal(800, signal[2400:2560].tobytes()))
    assert rms(burst[320:480]) > 0.3 * rms(signal[1600:2400])


def test_a_lost_opus_frame_is_filled_from_the_next_packets_fec_else_by_plc() -> None:
    packets = opus_packets()
    reference = OpusDecoder(8000)
    decoded = [_samples(reference.decode(p)) for p in packets[:21]]

    def decode_with_loss(fec: bool) -> array.array[int]:
        decoder = OpusDecoder(8000)
        for packet in packets[:19]:
            decoder.decode(packet)
        return _samples(decoder.conceal(160, packets[20] if fec else None))

    from_fec, from_plc = decode_with_loss(True), decode_with_loss(False)
    assert len(from_fec) == len(from_plc) == 160
    assert rms(from_fec) > 0.2 * rms(decoded[19])  # not silence
    # the FEC copy is the lost frame, coarser; PLC only extrapolates the one before it
    assert _error(from_fec, decoded[19]) < _error(from_plc, decoded[19])


def _feed(path: MediaPath, packets: list[tuple[int, int, bytes, float]], pt: int) -> list[tuple[int, bytes]]:
    out = []
    for seq, ts, payload, now in packets:
        emitted, _ = path.feed(7, seq, ts, pt, False, payload, now)
        out += [(p.timestamp, p.payload) for p in emitted]
    return out


def _path(incoming: dict[int, object], out: object) -> MediaPath:
    path = MediaPath("test")
    path.configure(incoming, out, None)  # type: ignore[arg-type]
    return path


def test_opus_to_pcmu_reorders_conceals_and_keeps_the_input_timeline() -> None:
    packets = opus_packets()
    clean = _feed(_path({111: OPUS}, PCMU), [(i, 960 * i, p, 0.02 * i) for i, p in enumerate(packets)], 111)
    assert len(clean) == 50
    # 3 and 4 then 7 and 8 swapped by the network, 20 lost, 30-34 lost (a 100 ms burst); arrival times as
    # sent. The first swap is not waited for (the reorder wait adapts, rtp/reorder.py: 0 until a reordering
    # is seen): 3 is concealed from 4's FEC and dropped when it comes; the second swap is put in order.
    order = list(range(50))
    order[3], order[4] = 4, 3
    order[7], order[8] = 8, 7
    sent = [(i, 960 * i, packets[i], 0.02 * n) for n, i in enumerate(order) if i != 20 and not 30 <= i < 35]
    path = _path({111: OPUS}, PCMU)
    lossy = _feed(path, sent, 111)
    assert len(lossy) == 50  # every 20 ms slot has a frame: the lost ones concealed
    assert all((b[0] - a[0]) % 2**32 == 160 for a, b in itertools.pairwise(lossy))
    # the same audio as when 3 never came and 7 and 8 came in order: the second pair was put in order
    # (the concealment of 3 changes the decoder's state from there on: compared with the same loss)
    in_order = [
        (i, 960 * i, packets[i], 0.02 * i) for i in range(50) if i not in (3, 20) and not 30 <= i < 35
    ]
    reference = _feed(_path({111: OPUS}, PCMU), in_order, 111)
    assert [p for _, p in lossy[:20]] == [p for _, p in reference[:20]]
    assert lossy[3][1] != bytes([0xFF]) * 160  # concealed, not silence
    assert lossy[20][1] != bytes([0xFF]) * 160  # the lost frame is not silence (FEC of packet 21)
    assert path.stats().dropped == 1  # 3, after its slot (``lost`` counts swapped pairs too: A.1 simplified)


def test_no_wait_on_in_order_input_and_a_late_packet_is_dropped() -> None:
    packets = opus_packets()
    path = _path({111: OPUS}, PCMU)
    for i in range(5):  # each packet comes out at once when nothing is missing
        assert len(path.feed(7, i, 960 * i, 111, False, packets[i], 0.02 * i)[0]) == 1
    # 5 missing: no reordering seen yet, so no wait (rtp/reorder.py): 5 concealed, then 6
    assert len(path.feed(7, 6, 960 * 6, 111, False, packets[6], 0.12)[0]) == 2
    assert len(path.feed(7, 7, 960 * 7, 111, False, packets[7], 0.14)[0]) == 1
    assert path.feed(7, 5, 960 * 5, 111, False, packets[5], 0.2)[0] == []
    assert path.stats().dropped == 1  # too late: its slot was concealed
    # that late one taught the wait: 9 missing, 10 waits for it now
    assert len(path.feed(7, 8, 960 * 8, 111, False, packets[8], 0.22)[0]) == 1
    assert path.feed(7, 10, 960 * 10, 111, False, packets[10], 0.26)[0] == []
    assert len(path.feed(7, 9, 960 * 9, 111, False, packets[9], 0.27)[0]) == 2  # 9, then 10


def test_pcmu_to_opus_conceals_a_lost_frame_and_keeps_the_spacing() -> None:
    signal = speechlike(8000, 0.4)
    frames = [ulaw_encode(signal[160 * i : 160 * (i + 1)]) for i in range(20)]
    path = _path({0: PCMU}, OPUS)
    sent = [(i, 160 * i, frames[i], 0.02 * i) for i in range(20) if i != 10]
    out = _feed(path, sent, 0)
    # (the Python path's Opus encoder may hold a frame back: the count is the input's, at most one short)
    assert len(out) >= 19
    assert all((b[0] - a[0]) % 2**32 == 960 for a, b in itertools.pairwise(out))


def test_a_silence_gap_without_loss_moves_the_output_timeline_as_much() -> None:
    # discontinuous transmission (RFC 7587 §3.1.3): consecutive numbers, a 200 ms jump in timestamps
    packets = opus_packets()
    path = _path({111: OPUS}, PCMU)
    sent = [
        (i, 960 * i + (9600 if i >= 5 else 0), packets[i], 0.02 * i + (0.2 if i >= 5 else 0))
        for i in range(8)
    ]
    out = _feed(path, sent, 111)
    steps = [(b[0] - a[0]) % 2**32 for a, b in itertools.pairwise(out)]
    assert steps == [160] * 4 + [160 + 1600] + [160] * 2


def test_g711_concealment_through_the_transcoder_keeps_the_level() -> None:
    signal = speechlike(8000, 0.2)
    transcoder = Transcoder("PCMU", "PCMA")
    for i in range(5):
        transcoder.transcode(ulaw_encode(signal[160 * i : 160 * (i + 1)]))
    assert transcoder.conceals and len(transcoder.conceal(2)) == 2


def test_packets_held_when_the_source_changes_come_out_first_on_their_own_timeline() -> None:
    packets = opus_packets()
    path = _path({111: OPUS}, PCMU)
    # 1 and 2 swapped: the reorder wait learns it (rtp/reorder.py), so later gaps are waited for
    for i, at in ((0, 0.0), (2, 0.02), (1, 0.04), (3, 0.06)):
        path.feed(7, i, 960 * i, 111, False, packets[i], at)
    assert path.feed(7, 5, 960 * 5, 111, False, packets[5], 0.10)[0] == []  # 4 missing: 5 waits
    # the answer's source takes over (RFC 3550 §8.2): 4 concealed and 5 go first, then the new one
    out, _ = path.feed(9, 500, 123456, 111, False, packets[6], 0.12)
    stamps = [p.timestamp for p in out]
    assert len(out) == 3 and [(b - a) % 2**32 for a, b in itertools.pairwise(stamps)] == [160, 160]
    assert path._mapper is not None and path._mapper.reanchors == 1  # the new source only


def test_telephone_events_between_audio_packets_are_neither_waited_for_nor_concealed() -> None:
    from gateway.media.codecs.dtmf import TelephoneEvent

    packets = opus_packets()
    path = MediaPath("test")
    path.configure({111: OPUS, 102: choice.SIP_EVENT_48K}, PCMU, choice.SIP_EVENT)
    out = [len(path.feed(7, i, 960 * i, 111, False, packets[i], 0.02 * i)[0]) for i in (0, 1)]
    # a digit replaces the audio for two packets (RFC 4733 §2.1: the audio's sequence numbers)
    for seq in (2, 3):
        event = TelephoneEvent(5, seq == 3, 10, 960 * (seq - 1)).serialize()
        events, _ = path.feed(7, seq, 1920, 102, seq == 2, event, 0.02 * seq)
        assert [p.payload_type for p in events] == [choice.SIP_EVENT.payload_type]
    audio, _ = path.feed(7, 4, 960 * 4, 111, False, packets[4], 0.08)
    assert out == [1, 1] and len(audio) == 1  # at once, nothing concealed


def _g722_packets(signal: array.array[int]) -> list[bytes]:
    """``signal`` (16 kHz) as 20 ms G.722 payloads, through FFmpeg's encoder as a desk phone sends them."""
    encoder = CodecContext.create("g722", "w")
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "mono", 16000
    encoder.time_base = fractions.Fraction(1, 16000)
    out: list[bytes] = []
    for index in range(len(signal) // 320):
        frame = AudioFrame(format="s16", layout="mono", samples=320)
        frame.planes[0].update(signal[320 * index : 320 * (index + 1)].tobytes())
        frame.sample_rate, frame.pts = 16000, index * 320
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return out


def test_the_concealment_at_16_khz_continues_the_pitch_and_joins_the_next_frame() -> None:
    signal = speechlike(16000, 0.2)
    plc = G711Concealer(16000)
    for i in range(5):
        plc.good(signal[320 * i : 320 * (i + 1)].tobytes())
    following = signal[2240:2560]  # frames 5 and 6 lost, 7 known
    gap = _samples(plc.conceal(640, following.tobytes()))
    real = signal[1600:2240]
    assert len(gap) == 640 and 0.5 < rms(gap) / rms(real) < 1.5
    assert _error(gap[:160], real[:160]) < rms(real[:160])  # the pitch went on: closer than silence
    assert abs(gap[-1] - following[0]) < max(abs(b - a) for a, b in itertools.pairwise(signal[2200:2560]))


def test_a_lost_g722_frame_is_concealed_at_16_khz_in_its_slot_on_the_way_to_opus() -> None:
    """Issue 66 item 2: a G.722 phone's lost packet is filled from the speech around it (not left a gap
    for the browser), and what fills it is 16 kHz speech like the real frame."""
    signal = speechlike(16000, 0.4)
    payloads = _g722_packets(signal)
    path = _path({9: choice.known("G722")}, OPUS)
    out = _feed(path, [(i, 160 * i, payloads[i], 0.02 * i) for i in range(20) if i != 10], 9)
    assert len(out) >= 19  # (the Opus encoder may hold a frame back)
    assert all((b[0] - a[0]) % 2**32 == 960 for a, b in itertools.pairwise(out))  # the slot is filled
    decoder = OpusDecoder(16000)
    decoded = [_samples(decoder.decode(payload)) for _, payload in out]
    lost, real = decoded[10], signal[3200:3520]
    assert 0.5 < rms(lost) / rms(real) < 1.5
    assert path.stats().dropped == 0
