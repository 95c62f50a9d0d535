"""Call transfer in the call machine (gateway/calls/connected/transfer.py): REFER out and in, the policy on both."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pytest

from gateway.calls import (
    CallMachine,
    CallState,
    CancelTimer,
    IllegalEvent,
    NotifyEnded,
    ReplacedByTransfer,
    SipBye,
    SipByeReceived,
    StartTimer,
    TimerFired,
    TimerName,
    WebDetached,
)
from gateway.calls.boundary.commands import (
    NotifyConnected,
    NotifyError,
    NotifyRinging,
    NotifyTransfer,
    NotifyTransferRequested,
    SipAnswerRefer,
    SipNotifyRefer,
    SipRefer,
    TransferState,
)
from gateway.calls.boundary.events import (
    SipReferReceived,
    SipReferResult,
    SipTransferProgress,
    TransferOutcome,
    WebTransfer,
)
from gateway.calls.connected.transfer import referrer_outcome
from gateway.calls.errors import InvalidValue
from gateway.calls.reasons import EndReason
from gateway.config.pbxs import PbxPlan
from gateway.config.schema import PbxSection
from gateway.config.values import HostPort
from tests.calls import flows as f

TARGET = f"sip:1003@{f.DOMAIN}"


def states(out: Sequence[object]) -> list[TransferState]:
    return [c.state for c in out if isinstance(c, NotifyTransfer)]


def test_blind_transfer_refers_the_policy_checked_target_and_ends_on_a_2xx_sipfrag() -> None:
    call = f.connected_out()
    out = call.handle(WebTransfer("s1", f.ALICE, "1003"))
    assert out[0] == SipRefer("c1", target=TARGET)
    assert states(out) == [TransferState.REQUESTED]
    assert states(call.handle(SipReferResult(202, "Accepted"))) == [TransferState.ACCEPTED]
    out = call.handle(SipTransferProgress(180, "Ringing"))
    assert states(out) == [TransferState.PROGRESS]
    assert out == [NotifyTransfer("s1", "c1", TransferState.PROGRESS, 180, "SIP 180 Ringing")]
    out = call.handle(SipTransferProgress(200, "OK", terminated=True))
    assert states(out) == [TransferState.SUCCEEDED]
    assert SipBye("c1") in out
    ended = [c for c in out if isinstance(c, NotifyEnded)]
    assert [e.reason for e in ended] == [EndReason.TRANSFERRED]
    assert call.state is CallState.CLOSING


def test_a_transfer_the_policy_forbids_sends_no_refer() -> None:
    call = f.connected_out()
    out = call.handle(WebTransfer("s1", f.BOB, "0301234"))  # bob may call 1xxx only
    assert not [c for c in out if isinstance(c, SipRefer)]
    assert [c.code for c in out if isinstance(c, NotifyError)] == ["destination_not_allowed"]
    assert states(out) == [TransferState.FAILED]
    assert call.state is CallState.CONNECTED and call.transfer_out is None


def test_a_transfer_to_a_room_refers_the_room_at_our_listener_under_the_policy() -> None:
    """A room's number (its Request-URI at the gateway's own listener in `route`): REFER to that URI,
    still refused when the user's policy does not let her dial the number."""
    call = f.connected_out()
    room = "sip:1777@127.0.0.1:5070"
    assert call.handle(WebTransfer("s1", f.ALICE, "1777", route=room))[0] == SipRefer("c1", target=room)
    call = f.connected_out()
    out = call.handle(WebTransfer("s1", f.ALICE, "3001", route="sip:3001@127.0.0.1:5070"))  # not 1xxx, 0.
    assert not [c for c in out if isinstance(c, SipRefer)] and states(out) == [TransferState.FAILED]


def test_a_refused_refer_or_failing_sipfrag_keeps_the_call() -> None:
    call = f.connected_in()
    call.handle(WebTransfer("s1", f.ALICE, "1003"))
    out = call.handle(SipReferResult(603, "Declined"))
    assert states(out) == [TransferState.FAILED] and call.state is CallState.CONNECTED
    call.handle(WebTransfer("s1", f.ALICE, "1003"))  # a new attempt is allowed
    call.handle(SipReferResult(202, "Accepted"))
    out = call.handle(SipTransferProgress(486, "Busy Here", terminated=True))
    assert states(out) == [TransferState.FAILED]
    assert not [c for c in out if isinstance(c, SipBye)] and call.state is CallState.CONNECTED


def test_one_transfer_at_a_time_and_only_by_the_carrying_session() -> None:
    call = f.connected_out()
    call.handle(WebTransfer("s1", f.ALICE, "1003"))
    with pytest.raises(IllegalEvent):
        call.handle(WebTransfer("s1", f.ALICE, "1004"))
    with pytest.raises(IllegalEvent):
        f.connected_out().handle(SipReferResult(202))


def test_attended_transfer_names_the_consultation_call() -> None:
    call = f.connected_out()
    assert call.handle(WebTransfer("s1", f.ALICE, consult_call_id="c2"))[0] == SipRefer(
        "c1", consult_call_id="c2"
    )
    with pytest.raises(InvalidValue):
        WebTransfer("s1", f.ALICE)
    with pytest.raises(InvalidValue):
        WebTransfer("s1", f.ALICE, "1003", "c2")


def test_a_refer_from_the_sip_party_to_a_forbidden_target_gets_403() -> None:
    call = f.connected_in()
    out = call.handle(SipReferReceived("sip:0301234@pbx.example.org", f.BOB))
    assert out == [SipAnswerRefer("c1", 403, "Transfer Target Not Allowed")]
    assert [
        c.status
        for c in call.handle(SipReferReceived("sip:1003@elsewhere.example", f.ALICE))
        if isinstance(c, SipAnswerRefer)
    ] == [403]
    assert [
        c.status for c in call.handle(SipReferReceived(TARGET, None)) if isinstance(c, SipAnswerRefer)
    ] == [403]
    forbidden = "sip:0301234@pbx.example.org"  # with a Replaces naming no call of ours: policy holds
    assert [
        c.status
        for c in call.handle(SipReferReceived(forbidden, f.BOB, replaces=REPLACES))
        if isinstance(c, SipAnswerRefer)
    ] == [403]
    assert call.handle(SipReferReceived(TARGET, f.ALICE, replaces="abc;to-tag=1")) == [
        SipAnswerRefer("c1", 400, "Bad Replaces In Refer-To")  # RFC 3891 §6.1 wants both tags
    ]
    assert call.state is CallState.CONNECTED and call.transfer_in is None


REPLACES = "consult@host;to-tag=t1;from-tag=f1"


def test_an_attended_refer_is_carried_out_with_its_replaces() -> None:
    """A REFER with Replaces in its Refer-To (RFC 3891 §5): the browser is asked to call the target as
    for a blind one, and the call remembers the Replaces its INVITE must carry."""
    call = f.connected_in()
    out = call.handle(SipReferReceived(TARGET, f.ALICE, replaces=REPLACES))
    assert out[:3] == [
        SipAnswerRefer("c1", 202, "Accepted"),
        SipNotifyRefer("c1", 100, "Trying"),
        NotifyTransferRequested("s1", "c1", TARGET),
    ]
    assert call.transfer_in == TARGET and call.transfer_in_replaces == (REPLACES, False)
    call.handle(TransferOutcome(200, "OK"))
    assert call.transfer_in is None and call.transfer_in_replaces == ("", False)


def test_a_refer_replacing_a_call_of_ours_skips_the_policy() -> None:
    """Between two calls of this gateway (`own`: the web user is joined to a call that exists) the
    target is our own contact, which no allow_outbound lists: no policy applies."""
    call = f.connected_in()
    contact = "sip:1003@192.0.2.10:5060"
    assert [
        c.status
        for c in call.handle(SipReferReceived(contact, f.BOB, replaces=REPLACES))
        if isinstance(c, SipAnswerRefer)
    ] == [403]  # not own: bob may not call that
    out = call.handle(SipReferReceived(contact, f.BOB, replaces=REPLACES, own=True))
    assert out[0] == SipAnswerRefer("c1", 202, "Accepted")
    assert call.transfer_in_replaces == (REPLACES, True)


def test_an_allowed_refer_is_accepted_and_its_call_reported() -> None:
    call = f.connected_in()
    out = call.handle(SipReferReceived(TARGET, f.ALICE))
    assert out == [
        SipAnswerRefer("c1", 202, "Accepted"),
        SipNotifyRefer("c1", 100, "Trying"),
        NotifyTransferRequested("s1", "c1", TARGET),
        StartTimer("c1", TimerName.REFER_WAIT, call.settings.refer_timeout),  # the browser must dial
    ]
    assert call.handle(SipReferReceived(TARGET, f.ALICE)) == [SipAnswerRefer("c1", 491, "Request Pending")]
    assert call.handle(TransferOutcome(180, "Ringing")) == [
        CancelTimer("c1", TimerName.REFER_WAIT),
        SipNotifyRefer("c1", 180, "Ringing"),
    ]
    assert call.handle(TransferOutcome(200, "OK")) == [SipNotifyRefer("c1", 200, "OK")]
    with pytest.raises(IllegalEvent):
        call.handle(TransferOutcome(200, "OK"))
    assert call.state is CallState.CONNECTED  # the referrer ends the call (RFC 3515 §2.4.7)


def test_a_refer_the_browser_never_carries_out_fails_after_refer_timeout() -> None:
    """RFC 3515 §2.4.5: the implicit subscription needs a final NOTIFY; no call placed in time: 408."""
    call = f.connected_in()
    call.handle(SipReferReceived(TARGET, f.ALICE))
    assert call.handle(TimerFired(TimerName.REFER_WAIT)) == [SipNotifyRefer("c1", 408, "Request Timeout")]
    assert call.state is CallState.CONNECTED and call.transfer_in is None
    with pytest.raises(IllegalEvent):
        call.handle(TransferOutcome(180, "Ringing"))  # too late: the referrer was told


@pytest.mark.parametrize(
    ("build", "replaceable"),
    [
        (f.connected_out, True),
        (f.connected_in, True),
        (f.holding_local, True),
        (f.holding_remote, True),
        (f.inviting_ringing, False),
        (f.early_out, False),
        (f.invited, False),
        (f.early_in, False),
        (f.closing_bye, False),
        (f.closed, False),
    ],
)
def test_only_a_connected_or_held_call_may_be_replaced_by_an_attended_transfer(
    build: Callable[[], CallMachine], replaceable: bool
) -> None:
    assert build().replaceable is replaceable


def test_the_call_placed_for_a_refer_tells_the_referrer_ringing_connected_or_its_failure() -> None:
    """RFC 3515 §2.4.5: the placed call's own browser commands, read as the referring call's outcome."""
    assert referrer_outcome(NotifyRinging("s1", "c2")) == TransferOutcome(180, "Ringing")
    assert referrer_outcome(NotifyConnected("s1", "c2")) == TransferOutcome(200, "OK")
    busy = NotifyEnded("s1", "c2", EndReason.BUSY, "Busy Here", 486)
    assert referrer_outcome(busy) == TransferOutcome(486, "Busy Here")
    hung_up = NotifyEnded("s1", "c2", EndReason.HANGUP, "", None)
    assert referrer_outcome(hung_up) == TransferOutcome(487, "Request Terminated")
    long = NotifyEnded("s1", "c2", EndReason.BUSY, "x" * 80, 200)  # no failure status: 487
    assert referrer_outcome(long) == TransferOutcome(487, "x" * 60)
    assert referrer_outcome(NotifyTransfer("s1", "c2", TransferState.PROGRESS, 180, "")) is None


def test_a_referrer_takes_the_outcome_as_its_notify() -> None:
    call = f.connected_out()
    f.run(call, SipReferReceived(TARGET, f.ALICE))
    out = call.handle(TransferOutcome(180, "Ringing"))
    assert SipNotifyRefer("c1", 180, "Ringing") in out and call.transfer_in == TARGET
    out = call.handle(TransferOutcome(200, "OK"))
    assert SipNotifyRefer("c1", 200, "OK") in out and call.transfer_in is None


def test_a_consultation_call_replaced_by_a_transfer_is_hung_up_if_its_far_end_has_not() -> None:
    """RFC 3891 §3: the transferee's INVITE with Replaces makes the far end BYE the consultation call;
    whatever is left REPLACED_HANGUP (2 s) after the transfer succeeded is hung up as its user would."""
    call = f.connected_out()
    assert call.handle(ReplacedByTransfer()) == [StartTimer("c1", TimerName.REPLACED, 2.0)]
    out = call.handle(TimerFired(TimerName.REPLACED))
    assert SipBye("c1") in out
    assert [(c.session_id, c.reason) for c in out if isinstance(c, NotifyEnded)] == [("s1", EndReason.HANGUP)]
    assert call.state is CallState.CLOSING


def test_a_replaced_consultation_call_the_far_end_ends_needs_nothing_more() -> None:
    call = f.holding_local()
    f.run(call, ReplacedByTransfer())
    out = call.handle(SipByeReceived())
    assert CancelTimer("c1", TimerName.REPLACED) in out
    assert call.state is CallState.CLOSED


def test_a_replaced_consultation_call_without_its_browser_is_left_to_wait_for_it() -> None:
    call = f.connected_in(dataclasses.replace(f.SETTINGS, reconnect_grace=12.0))
    f.run(call, WebDetached("s1"), ReplacedByTransfer())
    assert call.handle(TimerFired(TimerName.REPLACED)) == []
    assert call.state is CallState.CONNECTED
    assert call.handle(ReplacedByTransfer()) == [StartTimer("c1", TimerName.REPLACED, 2.0)]
    closing = f.closing_bye()
    assert closing.handle(ReplacedByTransfer()) == []


def test_a_refer_to_a_number_at_the_pbxs_own_address_is_that_number() -> None:
    """Asterisk's Transfer() and blind transfers REFER to sip:2000@<its address>: a number at the PBX,
    judged and dialled as the number (issue 67 item 2: any host:port form of a target she may call);
    the same number at another port or host is not the PBX's."""
    pbx = PbxSection(address=HostPort("192.0.2.10", 5070), domain=f.DOMAIN)
    settings = dataclasses.replace(f.SETTINGS, pbx_plan=PbxPlan({"default": pbx}))
    call = f.connected_in(settings)
    out = call.handle(SipReferReceived("sip:1003@192.0.2.10:5070", f.ALICE))
    assert out[0] == SipAnswerRefer("c1", 202, "Accepted")
    assert out[2] == NotifyTransferRequested("s1", "c1", TARGET) and call.transfer_in == TARGET
    for elsewhere in "sip:1003@192.0.2.10:5080", "sip:1003@192.0.2.11:5070":
        out = f.connected_in(settings).handle(SipReferReceived(elsewhere, f.ALICE))
        assert out == [SipAnswerRefer("c1", 403, "Transfer Target Not Allowed")], elsewhere
    # a PBX at the default port names its numbers with or without it
    default_port = PbxPlan({"default": PbxSection(address=HostPort("192.0.2.10"), domain=f.DOMAIN)})
    call = f.connected_in(dataclasses.replace(f.SETTINGS, pbx_plan=default_port))
    out = call.handle(SipReferReceived("sip:1003@192.0.2.10:5060", f.ALICE))
    assert out[0] == SipAnswerRefer("c1", 202, "Accepted")
