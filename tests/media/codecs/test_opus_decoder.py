"""libopus through ctypes: decoding at the target's rate, bad input refused with the package's error."""

from __future__ import annotations

import pytest

from gateway.media.codecs.opus_decoder import OpusDecodeError, OpusDecoder, opus_available
from gateway.media.codecs.transcode import Transcoder


@pytest.fixture(autouse=True)
def libopus() -> None:
    if not opus_available():
        pytest.fail("no libopus: PyAV's wheel bundles one")


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_a_20_ms_packet_decodes_to_20_ms_at_the_rate_asked(rate: int) -> None:
    (packet,) = Transcoder("PCMU", "opus").transcode(b"\x10" * 160)
    decoder = OpusDecoder(rate)
    assert len(decoder.decode(packet)) == 2 * rate // 50
    decoder.close()
    decoder.close()  # idempotent
    with pytest.raises(OpusDecodeError, match="closed"):
        decoder.decode(packet)


def test_bad_rates_and_packets_are_refused() -> None:
    with pytest.raises(OpusDecodeError, match="44100"):
        OpusDecoder(44100)
    with pytest.raises(OpusDecodeError, match="opus_decode failed"):
        OpusDecoder(8000).decode(b"\xff\xff\xff")  # code 3 without its frame count byte's frames
