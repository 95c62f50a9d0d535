"""Reliable provisional responses (RFC 3262): RSeq/RAck parsing, the UAC's verdicts (in order,
retransmission, out of order, forks), the UAS's machine (RSeq, retransmission at T1 doubling, give-up
after 64*T1, PRACK matched or 481, queueing, the 2xx held back) and every (state, event) pair."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import BadRequest, Request, Response, SIPError, make_response, parse_name_addr
from sipcore.dialogs.reliable import (
    RSEQ_MAX,
    TABLE,
    Arm,
    GiveUp,
    ProvisionalTracker,
    RAck,
    ReliableError,
    ReliableEvent,
    ReliableSender,
    ReliableState,
    Transmit,
    Verdict,
    is_reliable,
    parse_rseq,
    wants_reliable,
)
from sipcore.dialogs.requests import Endpoint, build_invite

ENDPOINT = Endpoint("203.0.113.5", 5060)
ALICE = parse_name_addr("<sip:alice@gw.example.org>")
BOB = parse_name_addr("<sip:bob@pbx.example.org>")
SDP = b"v=0\r\nm=audio 10000 RTP/AVP 0\r\n"
T1 = 0.5


def invite(headers: tuple[tuple[str, str], ...] = (("Require", "100rel"),)) -> Request:
    return build_invite(ENDPOINT, from_=ALICE, to=BOB, body=SDP, call_id="c1@gw", cseq=7, headers=headers)


def provisional(status: int = 183, *, rseq: int | None = 1, tag: str = "bob", body: bytes = b"") -> Response:
    headers: list[tuple[str, str]] = []
    if rseq is not None:
        headers += [("Require", "100rel"), ("RSeq", str(rseq))]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return make_response(invite(), status, to_tag=tag, headers=tuple(headers), body=body)


def prack(rack: str | None) -> Request:
    base = invite()
    headers = base.headers.replace("CSeq", "8 PRACK").remove("Require")
    if rack is not None:
        headers = headers.add("RAck", rack)
    return Request("PRACK", base.uri, headers)


# --- values ------------------------------------------------------------------------------------------
def test_rack_parses_and_prints() -> None:
    rack = RAck.parse("  776656 1 invite ")
    assert rack == RAck(776656, 1, "INVITE")
    assert str(rack) == "776656 1 INVITE"


@pytest.mark.parametrize("value", ["", "1 2", "1 2 INVITE x", "0 1 INVITE", "x 1 INVITE", "1 -2 INVITE",
                                   "1 1 IN(VITE", "4294967296 1 INVITE", "99999999999 1 INVITE"])  # fmt: skip
def test_a_bad_rack_is_a_400(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        RAck.parse(value)
    assert caught.value.status == 400


def test_rack_value_object_validates() -> None:
    with pytest.raises(ValueError, match="RSeq 0"):
        RAck(0, 1, "INVITE")
    with pytest.raises(ValueError, match="'invite'"):
        RAck(1, 1, "invite")


def test_rseq() -> None:
    assert parse_rseq("42") == 42
    for bad in ("0", "", "-1", "abc", "4294967296"):
        with pytest.raises(BadRequest):
            parse_rseq(bad)


@given(st.text(max_size=40))
def test_rack_parser_raises_only_its_own_error(value: str) -> None:
    with contextlib.suppress(SIPError):
        RAck.parse(value)


def test_is_reliable_needs_require_and_rseq_and_not_100() -> None:
    assert is_reliable(provisional())
    assert not is_reliable(provisional(rseq=None))
    assert not is_reliable(Response(183, "x", provisional().headers.remove("RSeq")))
    assert not is_reliable(Response(100, "x", provisional().headers))


def test_wants_reliable() -> None:
    assert wants_reliable(invite(), when_supported=False)
    supported = invite((("Supported", "timer, 100rel"),))
    assert not wants_reliable(supported, when_supported=False)
    assert wants_reliable(supported, when_supported=True)
    assert not wants_reliable(invite(()), when_supported=True)


# --- UAC -----------------------------------------------------------------------------------------------
def test_uac_prack_once_per_rseq_in_order() -> None:
    tracker = ProvisionalTracker()
    assert tracker.classify(provisional(rseq=None)) == (Verdict.UNRELIABLE, None)
    assert tracker.classify(provisional(180, rseq=100)) == (Verdict.NEW, RAck(100, 7, "INVITE"))
    assert tracker.classify(provisional(180, rseq=100)) == (Verdict.RETRANSMISSION, RAck(100, 7, "INVITE"))
    assert tracker.classify(provisional(183, rseq=102)) == (Verdict.OUT_OF_ORDER, None)  # §4: a gap
    assert tracker.classify(provisional(183, rseq=99))[0] is Verdict.OUT_OF_ORDER
    assert tracker.classify(provisional(183, rseq=101)) == (Verdict.NEW, RAck(101, 7, "INVITE"))


def test_uac_each_fork_has_its_own_sequence() -> None:
    tracker = ProvisionalTracker()
    assert tracker.classify(provisional(rseq=5, tag="a"))[0] is Verdict.NEW
    assert tracker.classify(provisional(rseq=900, tag="b"))[0] is Verdict.NEW
    assert tracker.classify(provisional(rseq=6, tag="a"))[0] is Verdict.NEW


def test_uac_a_reliable_1xx_without_to_tag_or_with_bad_rseq_is_not_prack_ed() -> None:
    tracker = ProvisionalTracker()
    untagged = provisional()
    untagged = Response(183, "x", untagged.headers.replace("To", str(BOB)))
    assert tracker.classify(untagged) == (Verdict.OUT_OF_ORDER, None)
    bad = Response(183, "x", provisional().headers.replace("RSeq", "zero"))
    assert tracker.classify(bad) == (Verdict.OUT_OF_ORDER, None)


# --- UAS ------------------------------------------------------------------------------------------------
def sender() -> ReliableSender:
    return ReliableSender(invite(), t1=T1, rng=random.Random(3), call_id="c1")


def transmitted(actions: list[Transmit | Arm | GiveUp]) -> Response:
    sent = [a.response for a in actions if isinstance(a, Transmit)]
    assert len(sent) == 1, actions
    return sent[0]


def test_uas_stamps_rseq_and_require_and_retransmits_at_t1_doubling() -> None:
    machine = sender()
    actions = machine.send(make_response(invite(), 180, to_tag="us"), 0.0)
    first = transmitted(actions)
    rseq = int(first.headers.get("RSeq") or 0)
    assert 1 <= rseq <= RSEQ_MAX
    assert "100rel" in first.headers.tags("Require")
    assert actions[-1] == Arm(T1)
    assert machine.state is ReliableState.AWAITING_PRACK and machine.unacknowledged == rseq
    now, intervals = T1, []
    while True:
        actions = machine.timer(now)
        if actions == [GiveUp()]:
            break
        assert transmitted(actions) == first  # the same response, the same RSeq
        arm = actions[-1]
        assert isinstance(arm, Arm)
        intervals.append(round(arm.at - now, 3))
        now = arm.at
    assert intervals[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert now == pytest.approx(64 * T1)
    assert machine.state is ReliableState.DONE


def test_uas_prack_matched_by_rack_stops_retransmission() -> None:
    machine = sender()
    rseq = int(
        transmitted(machine.send(make_response(invite(), 180, to_tag="us"), 0.0)).headers.get("RSeq") or 0
    )
    assert machine.prack(prack(f"{rseq + 1} 7 INVITE"), 0.1) == (481, [])  # wrong RSeq
    assert machine.prack(prack(f"{rseq} 6 INVITE"), 0.1) == (481, [])  # wrong CSeq
    assert machine.prack(prack(f"{rseq} 7 BYE"), 0.1) == (481, [])  # wrong method
    assert machine.prack(prack(f"{rseq} 7 INVITE"), 0.2) == (200, [])
    assert machine.state is ReliableState.IDLE
    assert machine.timer(0.5) == []  # a stale timer
    assert machine.prack(prack(f"{rseq} 7 INVITE"), 0.6) == (481, [])  # already acknowledged


def test_uas_prack_without_rack_is_a_400() -> None:
    machine = sender()
    machine.send(make_response(invite(), 180, to_tag="us"), 0.0)
    with pytest.raises(BadRequest):
        machine.prack(prack(None), 0.1)
    assert machine.state is ReliableState.AWAITING_PRACK


def test_uas_second_reliable_1xx_waits_for_the_first_prack_and_takes_the_next_rseq() -> None:
    machine = sender()
    first = transmitted(machine.send(make_response(invite(), 180, to_tag="us"), 0.0))
    assert machine.send(make_response(invite(), 183, to_tag="us", body=SDP), 0.1) == []
    rseq = int(first.headers.get("RSeq") or 0)
    status, actions = machine.prack(prack(f"{rseq} 7 INVITE"), 0.2)
    assert status == 200
    second = transmitted(actions)
    assert second.status == 183 and second.headers.get("RSeq") == str(rseq + 1)


def test_uas_2xx_waits_for_prack_of_a_1xx_with_sdp_only() -> None:
    machine = sender()
    first = transmitted(machine.send(make_response(invite(), 180, to_tag="us"), 0.0))
    assert machine.may_send_2xx()  # §3: an unacknowledged 1xx without SDP does not hold the 2xx
    machine.send(make_response(invite(), 183, to_tag="us", body=SDP), 0.1)
    assert not machine.may_send_2xx()  # queued with SDP
    _, actions = machine.prack(prack(f"{first.headers.get('RSeq')} 7 INVITE"), 0.2)
    second = transmitted(actions)
    assert not machine.may_send_2xx()
    machine.prack(prack(f"{second.headers.get('RSeq')} 7 INVITE"), 0.3)
    assert machine.may_send_2xx()
    machine.finish()
    assert machine.state is ReliableState.DONE
    machine.finish()  # idempotent


def test_uas_refuses_what_is_not_a_reliable_1xx() -> None:
    machine = sender()
    with pytest.raises(ReliableError):
        machine.send(make_response(invite(), 200, to_tag="us"), 0.0)
    with pytest.raises(ReliableError):
        ReliableSender(prack("1 7 INVITE"))
    machine.finish()
    with pytest.raises(ReliableError, match="'SEND' in state 'DONE'"):
        machine.send(make_response(invite(), 180, to_tag="us"), 0.0)


def test_rseq_wraps_at_32_bits() -> None:
    class Top(random.Random):
        def randint(self, a: int, b: int) -> int:
            return 2**32 - 1

    machine = ReliableSender(invite(), rng=Top())
    first = transmitted(machine.send(make_response(invite(), 180, to_tag="us"), 0.0))
    machine.send(make_response(invite(), 180, to_tag="us"), 0.0)
    _, actions = machine.prack(prack(f"{first.headers.get('RSeq')} 7 INVITE"), 0.1)
    assert transmitted(actions).headers.get("RSeq") == "1"


@pytest.mark.parametrize("state", list(ReliableState))
@pytest.mark.parametrize("event", list(ReliableEvent))
def test_every_state_event_pair(state: ReliableState, event: ReliableEvent) -> None:
    machine = sender()
    if state is not ReliableState.IDLE:
        machine.send(make_response(invite(), 180, to_tag="us"), 0.0)
    if state is ReliableState.DONE:
        machine.finish()
    assert machine.state is state
    calls = {
        ReliableEvent.SEND: lambda: machine.send(make_response(invite(), 180, to_tag="us"), 1.0),
        ReliableEvent.PRACK: lambda: machine.prack(prack("1 7 INVITE"), 1.0),
        ReliableEvent.TIMER: lambda: machine.timer(1.0),
        ReliableEvent.FINISH: machine.finish,
    }
    if (state, event) in TABLE:
        calls[event]()
    else:
        with pytest.raises(ReliableError, match=f"{event.name!r} in state {state.name!r}"):
            calls[event]()
        assert machine.state is state
