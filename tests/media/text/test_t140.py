"""T.140 over RTP (RFC 4103, issue 68 item 1), sans-I/O: the receiver recovers lost packets from the RED
redundancy, leaves duplicates out and marks an unrecoverable gap with U+FFFD; the sender buffers 300 ms,
carries two generations and goes quiet when idle. The packets are built here byte by byte (RFC 2198 §3),
not with the code under test."""

from __future__ import annotations

import pytest

from gateway.media.rtp.packet import RtpPacket
from gateway.media.text.t140 import MISSING, T140Receiver, T140Sender
from sdp.text import TextFormat

RED = TextFormat(98, 100, 2)


def red_payload(blocks: list[tuple[int, bytes]], primary: bytes) -> bytes:
    """A RED payload: redundant (timestamp offset, data) blocks oldest first, then the primary (T.140 98)."""
    headers = b"".join(
        bytes([0x80 | 98]) + ((offset << 10) | len(data)).to_bytes(3, "big") for offset, data in blocks
    )
    return headers + bytes([98]) + b"".join(data for _, data in blocks) + primary


def stream(texts: list[str]) -> list[RtpPacket]:
    """The packets a sender with two generations sends for ``texts``, 300 ms apart, seq from 1000."""
    packets = []
    for i, text in enumerate(texts):
        earlier = [(300 * (i - j), texts[j].encode()) for j in range(max(0, i - 2), i)]
        payload = red_payload(earlier, text.encode())
        packets.append(RtpPacket(100, 1000 + i, 5000 + 300 * i, 0x1234, payload))
    return packets


def received(packets: list[RtpPacket], fmt: TextFormat = RED) -> tuple[str, T140Receiver]:
    receiver = T140Receiver(fmt)
    return "".join(receiver.feed(p) for p in packets), receiver


def test_in_order_gives_each_primary_once() -> None:
    text, receiver = received(stream(["He", "llo", " wo", "rld"]))
    assert text == "Hello world"
    assert receiver.stats.recovered == 0 and receiver.stats.lost == 0


@pytest.mark.parametrize("lost", [[1], [2], [1, 2], [0, 3]])
def test_lost_packets_within_two_generations_come_back_whole(lost: list[int]) -> None:
    packets = [p for i, p in enumerate(stream(["Hé", "llo", " wo", "rld", "!"])) if i not in lost or i == 0]
    text, receiver = received(packets)
    assert text == "Héllo world!"
    assert receiver.stats.lost == 0 and receiver.stats.recovered == len([i for i in lost if i != 0])


def test_three_lost_in_a_row_mark_the_gap_with_the_missing_text_marker() -> None:
    packets = stream(["a", "b", "c", "d", "e", "f"])
    text, receiver = received([packets[0], packets[4], packets[5]])
    assert text == f"a{MISSING}cdef"  # "b" went beyond the redundancy; "c" and "d" were recovered
    assert receiver.stats.lost == 1 and receiver.stats.recovered == 2


def test_duplicates_and_late_packets_give_nothing() -> None:
    packets = stream(["x", "y", "z"])
    text, receiver = received([packets[0], packets[0], packets[2], packets[1], packets[2]])
    assert text == "xyz" and receiver.stats.duplicates == 3


def test_plain_t140_without_red_marks_a_loss() -> None:
    packets = [RtpPacket(98, 7 + i, 300 * i, 9, t.encode()) for i, t in enumerate(["ab", "cd", "ef"])]
    text, _ = received([packets[0], packets[2]], TextFormat(98))
    assert text == f"ab{MISSING}ef"


def test_bom_is_left_out_and_backspace_kept() -> None:
    text, _ = received(stream(["\ufeffab", "\b", "c"]))
    assert text == "ab\bc"


def test_malformed_and_foreign_payloads_are_counted_not_raised() -> None:
    receiver = T140Receiver(RED)
    assert receiver.feed(RtpPacket(100, 1, 1, 1, b"\x80\x00")) == ""  # a truncated RED header
    assert receiver.feed(RtpPacket(0, 2, 1, 1, b"abc")) == ""  # not a T.140 payload type
    assert receiver.stats.malformed == 2


def test_the_sender_buffers_300_ms_sends_two_generations_then_goes_quiet() -> None:
    sender = T140Sender(RED, timestamp_base=0)
    assert sender.due() is None and sender.take(0.0) is None  # idle: nothing at all
    sender.write("H", 10.0)
    sender.write("i", 10.1)
    assert sender.take(10.2) is None  # still buffering
    sent = []
    now = 10.3
    while (due := sender.due()) is not None:
        now = max(now, due)
        packet = sender.take(now)
        assert packet is not None
        sent.append(packet)
        if len(sent) == 1:
            sender.write("!", now + 0.05)
    assert [s[3] for s in sent] == [True, False, False, False]  # the marker on the burst's first
    assert [s[2] for s in sent] == [10300, 10600, 10900, 11200]  # milliseconds, 300 apart
    text, _ = received([RtpPacket(pt, 1 + i, ts, 7, payload) for i, (pt, payload, ts, _) in enumerate(sent)])
    assert text == "Hi!" and all(s[0] == 100 for s in sent)
    # the last packet carries "!" and the empty one before it as redundancy, and no text of its own
    lost_two = [
        RtpPacket(pt, 1 + i, ts, 7, payload) for i, (pt, payload, ts, _) in enumerate(sent) if i in (0, 3)
    ]
    assert received(lost_two)[0] == "Hi!"
    assert sender.due() is None and sender.take(now + 5) is None
    sender.write("again", now + 10)  # a new burst: the marker again, no redundancy owed
    packet = sender.take(now + 10.3)
    assert (
        packet is not None
        and packet[3]
        and received([RtpPacket(100, 1, packet[2], 7, packet[1])])[0] == "again"
    )


def test_the_sender_without_red_sends_plain_t140() -> None:
    sender = T140Sender(TextFormat(98), timestamp_base=0)
    sender.write("ok", 1.0)
    assert sender.take(1.3) == (98, b"ok", 1300, True)
    assert sender.due() is None
