"""The per-call trace store (gateway/ops/trace.py): SIP messages filed by Call-ID, linked to calls, and
every bound: messages and bytes per call, ended calls kept by count and age, pending Call-IDs, live calls."""

from __future__ import annotations

from gateway.ops.trace import Kind, Leg, TraceLimits, TraceStore, sip_call_id

LOCAL = ("127.0.0.1", 5060)
PBX = ("127.0.0.1", 5070)


def invite(call_id: str, body: str = "") -> bytes:
    return (
        f"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def test_the_call_id_header_is_found_in_either_form_and_not_in_the_body() -> None:
    assert sip_call_id(invite("abc@host")) == "abc@host"
    assert sip_call_id(b"BYE sip:x SIP/2.0\r\ni: short-form \r\nCSeq: 2 BYE\r\n\r\n") == "short-form"
    assert sip_call_id(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\nCall-ID: in-the-body\r\n") is None
    assert sip_call_id(b"\r\n\r\n") is None


def test_pending_messages_join_their_call_when_linked_in_time_order() -> None:
    store = TraceStore()
    store.sip(invite("sip-1"), "in", "UDP", LOCAL, PBX, now=10.0)
    store.decision("gw-1", "INFO", "gateway.calls", "call=gw-1 ringing", now=10.5)
    assert store.get("gw-1") is not None and store.pending == 1
    store.link("gw-1", "sip-1", now=10.6)
    store.sip(
        b"SIP/2.0 200 OK\r\nCall-ID: sip-1\r\nCSeq: 1 INVITE\r\n\r\n", "out", "UDP", LOCAL, PBX, now=11.0
    )
    trace = store.get("gw-1")
    assert trace is not None and store.pending == 0
    assert [(e.kind, e.time) for e in trace.entries] == [
        (Kind.SIP, 10.0),
        (Kind.DECISION, 10.5),
        (Kind.SIP, 11.0),
    ]
    assert trace.entries[0].leg is Leg.SIP and trace.entries[0].remote == PBX
    assert trace.started == 10.0 and trace.sip_call_ids == ["sip-1"]


def test_websocket_messages_are_the_web_leg() -> None:
    store = TraceStore()
    store.link("gw", "ws-1", now=0.0)
    store.sip(invite("ws-1"), "in", "WSS", LOCAL, ("127.0.0.1", 40000), now=1.0)
    trace = store.get("gw")
    assert trace is not None and trace.entries[0].leg is Leg.WEB


def test_a_call_keeps_at_most_max_messages_and_max_bytes() -> None:
    store = TraceStore(TraceLimits(max_messages=3, max_bytes=10_000))
    for number in range(5):
        store.web("gw", "out", "json", "ringing", "x" * 10, now=float(number))
    trace = store.get("gw")
    assert trace is not None and (len(trace.entries), trace.dropped) == (3, 2)
    store = TraceStore(TraceLimits(max_messages=100, max_bytes=2500))
    for number in range(5):
        store.web("gw", "out", "json", "offer", "y" * 1000, now=float(number))
    trace = store.get("gw")
    assert trace is not None and (len(trace.entries), trace.size, trace.dropped) == (2, 2000, 3)


def test_pending_messages_are_bounded_too() -> None:
    store = TraceStore(TraceLimits(max_messages=2, max_pending=3, keep_seconds=60))
    for number in range(5):
        store.sip(invite(f"options-{number}"), "in", "UDP", LOCAL, PBX, now=float(number))
    assert store.pending == 3  # the oldest two went
    for number in range(4):
        store.sip(invite("options-4"), "in", "UDP", LOCAL, PBX, now=5.0 + number)
    store.link("gw", "options-4", now=10.0)
    trace = store.get("gw")
    assert trace is not None and (len(trace.entries), trace.dropped) == (2, 3)
    store.sip(invite("late"), "in", "UDP", LOCAL, PBX, now=100.0)  # the others are older than 60 s
    assert store.pending == 1


def test_ended_calls_are_kept_by_count_and_by_age() -> None:
    store = TraceStore(TraceLimits(keep_calls=2, keep_seconds=100))
    for number in range(3):
        store.link(f"gw-{number}", f"sip-{number}", now=float(number))
        store.ended(f"gw-{number}", now=float(number))
    assert "gw-0" not in store and "gw-1" in store and "gw-2" in store
    store.sip(invite("sip-0"), "in", "UDP", LOCAL, PBX, now=3.0)  # a forgotten call's Call-ID: pending
    assert store.pending == 1
    store.decision("gw-0", "INFO", "x", "a late line about a forgotten call", now=3.0)
    assert "gw-0" not in store  # does not start it again
    store.expire(now=101.5)
    assert "gw-1" not in store and "gw-2" in store
    store.expire(now=102.5)
    assert len(store) == 0


def test_live_calls_are_capped() -> None:
    store = TraceStore(TraceLimits(max_live=2))
    for number in range(3):
        store.web(f"gw-{number}", "in", "json", "WebDial", "{}", now=0.0)
    assert len(store) == 2 and store.untraced == 1 and "gw-2" not in store
    store.ended("gw-0", now=1.0)
    store.web("gw-2", "in", "json", "WebDial", "{}", now=2.0)
    assert "gw-2" in store


def test_a_live_call_idle_for_keep_seconds_counts_as_ended_and_makes_room() -> None:
    store = TraceStore(TraceLimits(max_live=2, keep_calls=10, keep_seconds=100))
    store.decision("never-a-call", "INFO", "x", "call=never-a-call refused", now=0.0)
    store.web("talking", "in", "json", "WebDial", "{}", now=50.0)
    store.web("new", "in", "json", "WebDial", "{}", now=60.0)  # max_live: not traced yet
    assert "new" not in store and store.untraced == 1
    store.web("talking", "out", "json", "connected", "{}", now=120.0)
    store.web("new", "in", "json", "WebDial", "{}", now=121.0)  # the idle one ended, room made
    assert "new" in store and store.untraced == 1
    idle = store.get("never-a-call")
    assert idle is not None and idle.ended == 121.0  # ended when found idle, kept from then on
    store.expire(now=219.0)
    talking = store.get("talking")
    assert "never-a-call" in store and talking is not None and talking.ended is None  # heard at 120
    store.expire(now=222.0)
    assert "never-a-call" not in store and "talking" in store
