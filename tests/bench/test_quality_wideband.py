"""bench/quality_bench.py's wideband scoring (issue 66 item 1): a 16 kHz espeak-ng reference, the phone's
G.722 and Opus round trips, PESQ P.862.2 (``wb``) at 16 kHz. What a wideband score must see: the same
speech cut to narrowband (through 8 kHz and back) scores clearly lower in wideband, not in narrowband."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from peers.binaries import require_binary, unavailable
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))


def test_wideband_scores_see_the_band_that_narrowband_cannot(tmp_path: Path) -> None:
    require_binary("espeak-ng")
    require_binary("sox")
    try:
        import numpy  # noqa: F401
        import pesq  # noqa: F401
    except ImportError:
        unavailable("the bench's pesq and numpy are not installed (pip install -e '.[bench]')")
    from quality_peers import PHONE, RATE, resample, round_trip, score, speech

    wide = speech(tmp_path, seconds=6.0, rate=16000)
    narrow = speech(tmp_path, seconds=6.0)
    assert len(wide) == 2 * len(narrow) == 6 * 16000
    g722 = round_trip(PHONE["g722"], wide)
    opus = round_trip(PHONE["opus"], wide)
    cut = resample(resample(opus, 16000, RATE), RATE, 16000)  # the same speech through an 8 kHz stage
    wb = {name: score(wide, pcm, 16000) for name, pcm in (("g722", g722), ("opus", opus), ("cut", cut))}
    assert wb["g722"] > 2.5 and wb["opus"] > 3.0, wb
    assert wb["cut"] < wb["opus"] - 0.5, wb  # wideband sees the band an 8 kHz stage removes
    nb = score(narrow, resample(opus, 16000, RATE)), score(narrow, resample(cut, 16000, RATE))
    assert nb[1] == pytest.approx(nb[0], abs=0.1), nb  # narrowband cannot tell
