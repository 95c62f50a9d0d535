"""gateway.media.video.bandwidth: REMB, TMMBR and TMMBN packets both ways, and when a limit is passed on."""

from __future__ import annotations

import pytest
from aiortc.rtp import pack_remb_fci

from gateway.media.errors import PacketError
from gateway.media.rtp.rtcp import RtcpReceiverReport, parse_rtcp, serialize_rtcp
from gateway.media.video import bandwidth
from gateway.media.video.bandwidth import HintRelay, Remb, Tmmbn, Tmmbr, TmmbrEntry, bandwidth_hints


def test_remb_reads_what_aiortc_writes_and_back() -> None:
    body = (0x1234).to_bytes(4, "big") + bytes(4) + pack_remb_fci(1_234_567, [7, 8])
    remb = Remb.parse(body)
    assert remb is not None and remb.sender == 0x1234 and remb.ssrcs == (7, 8)
    assert 1_234_567 - 8 <= remb.bitrate <= 1_234_567  # 18-bit mantissa
    assert remb.to_rtcp().body == body
    assert Remb.parse(bytes(8) + b"NOPE" + bytes(4)) is None  # another application's feedback


@pytest.mark.parametrize("bitrate", [0, 1, 120_000, 131_071, 131_072, 2_500_000, 10**12])
def test_tmmbr_entries_round_trip_rounded_down(bitrate: int) -> None:
    entry = TmmbrEntry(0xCAFE, bitrate, 40)
    back = TmmbrEntry.unpack(entry.pack(), 0)
    assert back.ssrc == 0xCAFE and back.overhead == 40
    assert back.bitrate <= bitrate and bitrate - back.bitrate < max(1, bitrate >> 16)


def test_a_compound_packet_gives_its_hints() -> None:
    request = Tmmbr(1, (TmmbrEntry(2, 300_000),))
    notice = Tmmbn(2, (TmmbrEntry(1, 300_000),))
    data = serialize_rtcp(
        [RtcpReceiverReport(1), request.to_rtcp(), notice.to_rtcp(), Remb(1, 50_000, (2,)).to_rtcp()]
    )
    hints = bandwidth_hints(parse_rtcp(data))
    assert hints == [request, notice, Remb(1, 50_000, (2,))]
    assert [type(h) for h in hints] == [Tmmbr, Tmmbn, Remb]
    with pytest.raises(PacketError, match="RFC 5104"):
        Tmmbr.parse(bytes(12))


def test_negotiated_tmmbr() -> None:
    assert bandwidth.negotiated_tmmbr(["nack pli", "ccm  TMMBR"])
    assert not bandwidth.negotiated_tmmbr(["nack pli", "ccm fir", "goog-remb"])


def test_hint_relay_passes_changes_and_refreshes() -> None:
    relay = HintRelay(change=0.05, refresh=5.0)
    assert relay.want(100_000, 0.0)
    assert not relay.want(104_000, 1.0)  # within 5 %
    assert relay.want(90_000, 1.2)  # a real change
    assert not relay.want(90_000, 6.0)
    assert relay.want(90_000, 6.3)  # refreshed 5 s after the last sent
    assert relay.sent == 3 and relay.last == 90_000
    with pytest.raises(ValueError, match="refresh"):
        HintRelay(refresh=0)


def test_bad_values_are_named() -> None:
    with pytest.raises(PacketError, match="TMMBR overhead"):
        TmmbrEntry(1, 1, 600)
    with pytest.raises(PacketError, match="REMB SSRC count"):
        Remb(1, 1, tuple(range(300)))
