"""DTMF: RFC 4733 payloads, sender sequences, receiver dedup and loss, SIP INFO bodies."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.media.codecs.dtmf import (
    DEFAULT_INFO_DURATION_MS,
    EVENT_CODES,
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    event_code,
    event_timestamp,
    format_dtmf,
    format_dtmf_relay,
    parse_dtmf,
    parse_dtmf_relay,
    parse_info_body,
)
from gateway.media.errors import DtmfError, MediaError

DIGITS = list(EVENT_CODES)


# ----------------------------------------------------------------------------- telephone-event


def test_payload_vector() -> None:
    # RFC 4733 §2.3: event 5, E=1, volume 10, duration 800
    event = TelephoneEvent.parse(bytes.fromhex("058a0320"))
    assert event == TelephoneEvent(5, True, 10, 800)
    assert event.digit == "5"
    assert event.serialize() == bytes.fromhex("058a0320")


def test_reserved_bit_ignored_and_unknown_event_kept() -> None:
    event = TelephoneEvent.parse(bytes.fromhex("20ca00a0"))  # event 32, E, R set, volume 10
    assert event == TelephoneEvent(32, True, 10, 160) and event.digit is None


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(code: int, end: bool, volume: int, duration: int) -> None:
    event = TelephoneEvent(code, end, volume, duration)
    assert TelephoneEvent.parse(event.serialize()) == event


@given(st.binary(max_size=8))
def test_random_payloads_raise_only_dtmf_error(data: bytes) -> None:
    with contextlib.suppress(DtmfError):
        TelephoneEvent.parse(data)


@pytest.mark.parametrize("kwargs", [{"event": 256}, {"volume": 64}, {"duration": 65536}, {"event": -1}])
def test_invalid_event_fields(kwargs: dict[str, int]) -> None:
    with pytest.raises(DtmfError):
        TelephoneEvent(**{"event": 1, **kwargs})  # type: ignore[arg-type]


def test_digit_table() -> None:
    assert [event_code(d) for d in "0123456789*#ABCD!"] == list(range(17))
    assert event_code("a") == 12
    with pytest.raises(DtmfError, match="'x'"):
        event_code("x")
    assert issubclass(DtmfError, MediaError)


# --------------------------------------------------------------------------------------- sender


def test_sender_sequence_per_rfc_4733() -> None:
    packets = DtmfSender().packets("7", timestamp=1000, duration_ms=100)
    events = [p.event for p in packets]
    assert all(p.timestamp == 1000 for p in packets)  # one timestamp for the whole event
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {7}
    assert [round(p.offset, 3) for p in packets] == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12]
    assert packets[0].payload == bytes.fromhex("070a00a0")


def test_sender_shortest_event_is_end_packets_only() -> None:
    packets = DtmfSender().packets("#", timestamp=0, duration_ms=20)
    assert [(p.marker, p.event.end, p.event.duration) for p in packets] == [
        (True, True, 160),
        (False, True, 160),
        (False, True, 160),
    ]


def test_sender_wideband_clock() -> None:
    packets = DtmfSender(clock_rate=16000).packets("1", timestamp=0, duration_ms=60)
    assert [p.event.duration for p in packets] == [320, 640, 960, 960, 960]


@pytest.mark.parametrize(
    ("digit", "timestamp", "duration"), [("x", 0, 100), ("1", 0, 10), ("1", 0, 9000), ("1", -1, 100)]
)
def test_sender_rejects(digit: str, timestamp: int, duration: int) -> None:
    with pytest.raises(DtmfError):
        DtmfSender().packets(digit, timestamp, duration)


def test_sender_config_validated() -> None:
    with pytest.raises(DtmfError):
        DtmfSender(clock_rate=0)
    with pytest.raises(DtmfError):
        DtmfSender(volume=64)


# ------------------------------------------------------------------------------------- receiver


def receive(receiver: DtmfReceiver, packets: list[tuple[int, bytes]]) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for timestamp, payload in packets:
        out.extend(receiver.feed(timestamp, payload))
    return out


@pytest.mark.parametrize("digit", DIGITS)
def test_sender_to_receiver_yields_one_digit(digit: str) -> None:
    packets = DtmfSender().packets(digit, timestamp=123456, duration_ms=120)
    digits = receive(DtmfReceiver(), [(p.timestamp, p.payload) for p in packets])
    assert digits == [DtmfDigit(digit, 120)]


def test_digit_reported_on_first_end_packet() -> None:
    receiver = DtmfReceiver()
    packets = DtmfSender().packets("3", timestamp=0, duration_ms=100)
    results = [receiver.feed(p.timestamp, p.payload) for p in packets]
    assert [len(r) for r in results] == [0, 0, 0, 0, 1, 0, 0]


def test_lost_start_packet() -> None:
    packets = DtmfSender().packets("9", timestamp=50, duration_ms=100)[1:]  # no marker packet
    assert receive(DtmfReceiver(), [(p.timestamp, p.payload) for p in packets]) == [DtmfDigit("9", 100)]


def test_only_end_packets_arrive() -> None:
    packets = DtmfSender().packets("9", timestamp=50, duration_ms=100)[-2:]
    assert receive(DtmfReceiver(), [(p.timestamp, p.payload) for p in packets]) == [DtmfDigit("9", 100)]


def test_repeated_end_packets_and_late_duplicates() -> None:
    packets = DtmfSender().packets("5", timestamp=0, duration_ms=100)
    stream = [(p.timestamp, p.payload) for p in packets]
    stream += stream[-3:] + stream[:2]  # retransmitted ends and late updates after the end
    assert receive(DtmfReceiver(), stream) == [DtmfDigit("5", 100)]


def test_same_digit_twice_is_two_events() -> None:
    sender = DtmfSender()
    stream = [(p.timestamp, p.payload) for p in sender.packets("1", 0, 100)]
    stream += [(p.timestamp, p.payload) for p in sender.packets("1", 1600, 100)]
    assert receive(DtmfReceiver(), stream) == [DtmfDigit("1", 100), DtmfDigit("1", 100)]


def test_all_end_packets_lost_reported_by_next_event() -> None:
    sender = DtmfSender()
    first = [(p.timestamp, p.payload) for p in sender.packets("1", 0, 100) if not p.event.end]
    second = [(p.timestamp, p.payload) for p in sender.packets("2", 1600, 100)]
    assert receive(DtmfReceiver(), first + second) == [DtmfDigit("1", 80), DtmfDigit("2", 100)]


def test_all_end_packets_lost_reported_by_flush() -> None:
    receiver = DtmfReceiver()
    stream = [(p.timestamp, p.payload) for p in DtmfSender().packets("4", 0, 100) if not p.event.end]
    assert receive(receiver, stream) == []
    assert receiver.flush() == [DtmfDigit("4", 80)]
    assert receiver.flush() == []
    assert receive(receiver, stream[-1:]) == []  # a straggler of the flushed event


def test_reordered_updates_keep_the_longest_duration() -> None:
    packets = DtmfSender().packets("6", 0, 100)
    order = [0, 2, 1, 3, 4, 5, 6]
    assert receive(DtmfReceiver(), [(packets[i].timestamp, packets[i].payload) for i in order]) == [
        DtmfDigit("6", 100)
    ]


def test_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0, TelephoneEvent(70, True, 10, 800)) == []
    assert receiver.flush() == []


def test_receiver_accepts_event_objects_and_wideband() -> None:
    receiver = DtmfReceiver(clock_rate=16000)
    assert receiver.feed(0, TelephoneEvent(11, True, 20, 3200)) == [DtmfDigit("#", 200, 20)]


@given(st.lists(st.sampled_from(DIGITS), min_size=1, max_size=8), st.integers(0, 0xFFFFFFFF), st.randoms())
def test_digit_strings_survive_loss_of_any_non_final_packets(
    digits: list[str], start: int, rnd: object
) -> None:
    sender, stream = DtmfSender(), []
    for n, digit in enumerate(digits):
        packets = sender.packets(digit, (start + 2000 * n) & 0xFFFFFFFF, 100)
        kept = [p for p in packets[:-3] if rnd.random() < 0.5]  # type: ignore[attr-defined]
        stream += [(p.timestamp, p.payload) for p in kept + packets[-3:]]
    assert [d.digit for d in receive(DtmfReceiver(), stream)] == digits


# ------------------------------------------------------------------------------ SIP INFO bodies


def test_dtmf_relay_format_and_parse() -> None:
    body = format_dtmf_relay("5", 160)
    assert body == "Signal=5\r\nDuration=160\r\n"
    assert parse_dtmf_relay(body) == DtmfDigit("5", 160)
    assert parse_dtmf_relay(body.encode()) == DtmfDigit("5", 160)


@pytest.mark.parametrize("digit", DIGITS)
def test_dtmf_relay_round_trip_every_digit(digit: str) -> None:
    assert parse_dtmf_relay(format_dtmf_relay(digit, 250)) == DtmfDigit(digit, 250)
    assert parse_dtmf(format_dtmf(digit)) == DtmfDigit(digit, DEFAULT_INFO_DURATION_MS)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Signal=#\nDuration=100\n", DtmfDigit("#", 100)),  # bare LF
        ("signal = a\r\nduration = 40", DtmfDigit("A", 40)),  # case and spaces
        ("Signal=11\r\nDuration=100\r\n", DtmfDigit("#", 100)),  # event code
        ("Signal=16\r\n", DtmfDigit("!", DEFAULT_INFO_DURATION_MS)),  # flash, no duration
        ("Signal=!\r\nDuration=500\r\n", DtmfDigit("!", 500)),
        ("\r\nSignal=0\r\n\r\nDuration=1\r\n", DtmfDigit("0", 1)),
    ],
)
def test_dtmf_relay_tolerant_parsing(body: str, expected: DtmfDigit) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "no Signal"),
        ("Duration=100\r\n", "no Signal"),
        ("Signal=5\r\nDuration=abc\r\n", "Duration"),
        ("Signal=5\r\nDuration=0\r\n", "Duration"),
        ("Signal=5\r\nDuration=-5\r\n", "Duration"),
        ("Signal=5\r\nDuration=99999\r\n", "Duration"),
        ("Signal=5\r\nDuration=²\r\n", "Duration"),
        ("Signal=X\r\n", "unknown DTMF"),
        ("Signal=55\r\n", "unknown DTMF signal"),
        ("Signal=\r\n", "unknown DTMF signal"),
        ("Signal 5\r\n", "without '='"),
        (b"Signal=\xff", "not UTF-8"),
    ],
)
def test_dtmf_relay_malformed(body: str | bytes, reason: str) -> None:
    with pytest.raises(DtmfError, match=reason):
        parse_dtmf_relay(body)


@pytest.mark.parametrize("body", ["", "12", "x", "  "])
def test_application_dtmf_malformed(body: str) -> None:
    with pytest.raises(DtmfError):
        parse_dtmf(body)


def test_application_dtmf_tolerates_whitespace() -> None:
    assert parse_dtmf("7\r\n") == DtmfDigit("7", DEFAULT_INFO_DURATION_MS)


def test_parse_info_body_dispatches_on_content_type() -> None:
    assert parse_info_body("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n") == DtmfDigit("1", 100)
    assert parse_info_body("Application/DTMF; charset=utf-8", "*") == DtmfDigit("*", DEFAULT_INFO_DURATION_MS)
    with pytest.raises(DtmfError, match="unsupported"):
        parse_info_body("application/media_control+xml", "<x/>")


def test_format_rejects_bad_digits() -> None:
    with pytest.raises(DtmfError):
        format_dtmf_relay("Z", 100)
    with pytest.raises(DtmfError):
        format_dtmf_relay("1", -1)
    with pytest.raises(DtmfError):
        format_dtmf("")


@given(st.text(max_size=40))
def test_random_relay_bodies_raise_only_dtmf_error(body: str) -> None:
    with contextlib.suppress(DtmfError):
        parse_dtmf_relay(body)


def test_event_timestamp_counts_at_the_events_own_rate() -> None:
    """RFC 4733 §2.1 (issue 33): Opus at 48 kHz with telephone-event/8000: the event's timestamp in 8 kHz."""
    assert event_timestamp(480_000, 48000, 8000) == 80_000
    assert event_timestamp(480_000, 48000, 48000) == 480_000  # same rate: unchanged
    assert event_timestamp(0xFFFF_FFFF, 8000, 8000) == 0xFFFF_FFFF
    assert 0 <= event_timestamp(0xFFFF_FFFF, 48000, 8000) <= 0xFFFF_FFFF
