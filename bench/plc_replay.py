"""Concealment strategies replayed offline on quality_bench.py's speech and seeded losses (issue 35).

quality_bench.py measures calls through the boxes (about 40 minutes for 3 runs); this replays the same
speech through the same seeded loss patterns (bench/impair.py's ``Impairer``: the same packets lost as on
the bench's impaired leg for a seed) with no network and no box, in about a minute, so a change to how
lost frames are filled can be tried before it is built into the lanes. It uses the gateway's own
concealment, the Python path's (gateway/media/codecs: ``OpusDecoder.conceal``, ``G711Concealer``; the
native lane's C is the same logic), and prints PESQ MOS-LQO per cell, the median over ``--seeds`` loss
patterns (seeds 1, 2, 3...: the bench's browser leg uses seed 1, its phone leg 1001):

* web -> phone: the speech encoded as Chrome's WebRTC encodes voice once the answer asks for in-band FEC
  (libopus, 32 kb/s, VoIP, FEC on, told the loss: quality_bench.py's ``--sender chrome``), a lost frame
  filled as the lanes fill it (``lane``: libopus PLC, the last frame of a gap from the next packet's FEC),
  ``plc`` (libopus PLC, no FEC), ``silence`` (what rtpengine's transcoding does: nothing), then the PCMU
  round trip the phone hears.
* phone -> web: the speech as PCMU, a gap filled as the lanes do (``lane``: G.711 Appendix I joined to
  the next frame, g711_plc.py), ``appendix-i`` (Appendix I alone, no look-ahead), ``silence``. The Opus
  leg to the browser after it is left out (clean, it takes the score from 4.01 to 3.99).

Run: python bench/plc_replay.py [--cells loss2,loss5,loss10,burst5] [--seeds 3]
     (needs espeak-ng, sox: make bench-deps; pesq, numpy: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from impair import Impairer, Impairment  # noqa: E402
from quality_bench import CELLS  # noqa: E402
from quality_peers import FRAME, RATE, g711_round_trip, score, speech  # noqa: E402

from gateway.media.codecs.g711_plc import G711Concealer  # noqa: E402
from gateway.media.codecs.opus_decoder import OpusDecoder  # noqa: E402

MAX_CONCEALED = 10  # frames: a longer gap is left silent (gateway/media/forward.py MAX_CONCEALED_FRAMES)
# an explicit alias: where numpy is not installed (the test venv) mypy sees np.ndarray as Any
Samples: TypeAlias = np.ndarray[Any, np.dtype[np.int16]]


def fates(cell: Impairment, count: int, seed: int) -> list[bool]:
    """Which of ``count`` packets arrive (the bench's impaired leg with ``seed``); delay is left out:
    the lanes' reorder buffer puts a late packet back in order (the jitter cells score as clean)."""
    impairer = Impairer(Impairment(cell.name, loss=cell.loss, burst_loss=cell.burst_loss,
                                   burst_ms=cell.burst_ms, seed=seed))  # fmt: skip
    return [impairer.decide() is not None for _ in range(count)]


def gaps(arrived: list[bool]) -> Iterator[tuple[int, int]]:
    """(index, length) of each run: length 0 for an arrived packet, else the lost run starting there."""
    i = 0
    while i < len(arrived):
        if arrived[i]:
            yield i, 0
            i += 1
            continue
        j = i
        while j < len(arrived) and not arrived[j]:
            j += 1
        yield i, j - i
        i = j


def opus_packets(reference: Samples, loss_percent: int) -> list[bytes]:
    """The reference as 20 ms Opus packets, encoded as Chrome does with FEC on (see the module note)."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.bit_rate = 32000
    encoder.options = {"application": "voip", "fec": "1", "packet_loss": str(loss_percent),
                       "frame_duration": "20"}  # fmt: skip
    encoder.open()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    padded = np.concatenate([reference, np.zeros(RATE, np.int16)])
    packets: list[bytes] = []
    for start in range(0, len(padded) - FRAME + 1, FRAME):
        frame = av.AudioFrame.from_ndarray(padded[start : start + FRAME].reshape(1, -1), format="s16",
                                           layout="mono")  # fmt: skip
        frame.sample_rate, frame.pts = RATE, start
        for resampled in resampler.resample(frame):
            packets.extend(bytes(packet) for packet in encoder.encode(resampled))
    return packets[: len(reference) // FRAME + 10]


def web_to_phone(packets: list[bytes], arrived: list[bool], strategy: str) -> Samples:
    decoder, out = OpusDecoder(RATE), []
    for index, lost in gaps(arrived):
        if not lost:
            out.append(decoder.decode(packets[index]))
            continue
        following = packets[index + lost] if index + lost < len(packets) else None
        for k in range(lost):
            if strategy == "silence" or k >= MAX_CONCEALED:
                decoder.conceal(FRAME)  # the decoder's state moves on; nothing is heard
                out.append(bytes(2 * FRAME))
            else:
                fec = following if strategy == "lane" and k == lost - 1 else None
                out.append(decoder.conceal(FRAME, fec))
    return g711_round_trip(np.frombuffer(b"".join(out), np.int16))


def phone_to_web(frames: list[bytes], arrived: list[bool], strategy: str) -> Samples:
    plc, out = G711Concealer(), []
    for index, lost in gaps(arrived):
        if not lost:
            out.append(plc.good(frames[index]) if strategy != "silence" else frames[index])
            continue
        if strategy == "silence" or lost > MAX_CONCEALED:
            out.append(bytes(2 * FRAME * lost))
            continue
        following = frames[index + lost] if strategy == "lane" and index + lost < len(frames) else b""
        out.append(plc.conceal(FRAME * lost, following))
    return np.frombuffer(b"".join(out), np.int16).copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    lossy = [name for name, cell in CELLS.items() if cell.loss or cell.burst_loss]
    parser.add_argument("--cells", default=",".join(lossy), help=f"comma-separated, of {','.join(lossy)}")
    parser.add_argument(
        "--seeds", type=int, default=3, help="loss patterns per cell: seeds 1.. (quality_bench's --seed is 1)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        reference = speech(Path(work))
    pcmu = g711_round_trip(reference)
    frames = [pcmu[i : i + FRAME].tobytes() for i in range(0, len(pcmu) - FRAME + 1, FRAME)]
    print(f"PESQ MOS-LQO, median of {args.seeds} seeds; the G.711 ceiling {score(reference, pcmu):.2f}")
    for name in args.cells.split(","):
        cell = CELLS[name]
        percent = round(100 * (cell.loss or cell.burst_loss))
        packets = opus_packets(reference, percent)
        directions: dict[str, tuple[Callable[[list[bool], str], Samples], tuple[str, ...], int]] = {
            "web -> phone": (partial(web_to_phone, packets), ("lane", "plc", "silence"), len(packets)),
            "phone -> web": (partial(phone_to_web, frames), ("lane", "appendix-i", "silence"), len(frames)),
        }  # fmt: skip
        for direction, (replay, strategies, count) in directions.items():
            # the bench's seeds: the browser's leg `seed`, the phone's `seed + 1000`
            offset = 0 if direction == "web -> phone" else 1000
            medians = {
                strategy: statistics.median(
                    score(reference, replay(fates(cell, count, seed + offset), strategy)[: len(reference)])
                    for seed in range(1, args.seeds + 1)
                )
                for strategy in strategies
            }
            shown = "  ".join(f"{strategy} {value:.2f}" for strategy, value in medians.items())
            print(f"{cell.name:>14}  {direction}:  {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
