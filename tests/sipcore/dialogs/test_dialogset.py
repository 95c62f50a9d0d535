"""Dialog matching and forking (RFC 3261 §12.2.2, §13.2.2.4, §12.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import Request, Response, make_response, parse_message
from sipcore.dialogs.dialog import Dialog, DialogError, DialogId, DialogState
from sipcore.dialogs.dialogset import DialogSet, InviteOutcome

from .test_dialog import ENDPOINT, THEIR_INVITE, our_invite, response_to, their_request


def fork_response(invite: Request, status: int, tag: str, host: str) -> Response:
    return response_to(
        invite,
        status,
        tag=tag,
        headers=(("Record-Route", f"<sip:{host}-proxy;lr>"), ("Contact", f"<sip:bob@{host}>")),
    )


def test_three_early_dialogs_then_a_2xx() -> None:
    dialogs = DialogSet(ENDPOINT)
    invite = our_invite()
    assert dialogs.on_invite_response(invite, response_to(invite, 100, tag=None)) == InviteOutcome(None)
    early = [dialogs.on_invite_response(invite, fork_response(invite, 180, tag, tag)).dialog for tag in "abc"]
    assert len(dialogs) == 3 and all(d is not None and d.state is DialogState.EARLY for d in early)
    assert {d.id.remote_tag for d in early if d is not None} == {"a", "b", "c"}
    # A second 18x from fork b updates its dialog, creates no new one.
    again = dialogs.on_invite_response(invite, fork_response(invite, 183, "b", "b2"))
    assert again.dialog is early[1] and len(dialogs) == 3
    assert early[1] is not None and str(early[1].remote_target) == "sip:bob@b2"

    # The first 2xx (fork b) confirms b and ends a and c (§13.2.2.4).
    ok_b = fork_response(invite, 200, "b", "b")
    outcome = dialogs.on_invite_response(invite, ok_b)
    winner = outcome.dialog
    assert winner is early[1] and winner is not None and winner.state is DialogState.CONFIRMED
    assert {d.id.remote_tag for d in outcome.terminated} == {"a", "c"}
    assert all(
        d.state is DialogState.TERMINATED and d.reason == "another fork answered" for d in outcome.terminated
    )
    assert (
        outcome.ack is not None and str(outcome.ack.cseq) == "10 ACK" and str(outcome.ack.uri) == "sip:bob@b"
    )
    assert outcome.ack.headers.get("Route") == "<sip:b-proxy;lr>" and outcome.bye is None
    # Its retransmission gets the same ACK.
    assert dialogs.on_invite_response(invite, ok_b).ack is outcome.ack

    # A 2xx from fork c afterwards: ACK it, then BYE it, each to c's target.
    late = dialogs.on_invite_response(invite, fork_response(invite, 200, "c", "c"))
    assert late.dialog is not None and late.dialog.id.remote_tag == "c"
    assert late.ack is not None and late.bye is not None and late.terminated == (late.dialog,)
    assert str(late.ack.uri) == "sip:bob@c" and str(late.ack.cseq) == "10 ACK"
    assert str(late.bye.uri) == "sip:bob@c" and str(late.bye.cseq) == "11 BYE"
    assert late.bye.to is not None and late.bye.to.tag == "c"
    assert late.bye.headers.get("Route") == "<sip:c-proxy;lr>"
    assert late.dialog.state is DialogState.TERMINATED
    # A retransmission of that 2xx: ACK again, no second BYE.
    repeat = dialogs.on_invite_response(invite, fork_response(invite, 200, "c", "c"))
    assert repeat.ack is late.ack and repeat.bye is None
    # A 2xx from a fork never seen (d): ACK and BYE as well.
    unseen = dialogs.on_invite_response(invite, fork_response(invite, 200, "d", "d"))
    assert unseen.ack is not None and unseen.bye is not None
    # A late 18x from yet another fork creates nothing.
    assert dialogs.on_invite_response(invite, fork_response(invite, 180, "e", "e")).dialog is None

    # Matching: a response to the winner's BYE and a request from the winner's side.
    bye = winner.create_request("BYE")
    assert dialogs.match_response(response_to(bye, 200, tag="b")) is winner
    gone = dialogs.remove_terminated()
    assert winner in gone and len(dialogs) == 0


def test_non_2xx_final_ends_every_early_dialog() -> None:
    dialogs = DialogSet(ENDPOINT)
    invite = our_invite()
    for tag in "ab":
        dialogs.on_invite_response(invite, fork_response(invite, 180, tag, tag))
    outcome = dialogs.on_invite_response(invite, fork_response(invite, 486, "a", "a"))
    assert outcome.dialog is not None and outcome.dialog.id.remote_tag == "a"
    assert len(outcome.terminated) == 2 and all(d.state is DialogState.TERMINATED for d in dialogs)  # §12.3
    assert outcome.ack is None and outcome.bye is None
    # A final response from a fork with no early dialog.
    other = dialogs.on_invite_response(invite, fork_response(invite, 603, "z", "z"))
    assert other.dialog is None and other.terminated == ()
    # A 2xx after the INVITE failed (a fork that was early, or a new one): ACK, then BYE.
    for tag in "ay":
        late = dialogs.on_invite_response(invite, fork_response(invite, 200, tag, tag))
        assert late.ack is not None and late.bye is not None, tag
    assert not [d for d in dialogs if d.state is not DialogState.TERMINATED]
    assert dialogs.on_invite_response(invite, fork_response(invite, 180, "q", "q")).dialog is None


def test_2xx_without_provisional_and_errors() -> None:
    dialogs = DialogSet(ENDPOINT)
    invite = our_invite()
    outcome = dialogs.on_invite_response(invite, fork_response(invite, 200, "x", "x"))
    assert (
        outcome.dialog is not None
        and outcome.dialog.state is DialogState.CONFIRMED
        and outcome.ack is not None
    )
    # a 2xx without a To tag, to another INVITE: the dialog of an RFC 2543 peer, its remote tag null
    # (RFC 3261 §12.1.2); requests of that peer (From without a tag) match it, and it is ACKed
    untagged_invite = our_invite()
    untagged = dialogs.on_invite_response(untagged_invite, response_to(untagged_invite, 200, tag=None))
    assert untagged.dialog is not None and untagged.ack is not None
    assert untagged.dialog.id.remote_tag == "" and untagged.dialog.state is DialogState.CONFIRMED
    assert untagged.ack.to is not None and untagged.ack.to.tag is None
    bye = untagged.dialog.create_request("BYE")
    assert bye.to is not None and bye.to.tag is None
    # a 1xx without a To tag still makes no early dialog
    ringing = our_invite()
    assert dialogs.on_invite_response(ringing, response_to(ringing, 180, tag=None)).dialog is None
    with pytest.raises(DialogError, match="already exists"):
        dialogs.add(outcome.dialog)
    other = our_invite()  # another From tag
    with pytest.raises(DialogError, match="another INVITE"):
        dialogs.on_invite_response(invite, response_to(other, 180))
    with pytest.raises(DialogError, match="not an INVITE"):
        dialogs.on_invite_response(their_request(outcome.dialog, "INFO", 1), response_to(invite, 180))
    assert dialogs.on_invite_response(invite, response_to(invite, 180, tag=None)).dialog is None


def test_matching_requests_and_responses() -> None:
    dialogs = DialogSet(ENDPOINT)
    uas = dialogs.add(Dialog.from_uas_request(THEIR_INVITE, ENDPOINT, local_tag="alicetag"))
    assert uas.id in dialogs and dialogs.get(uas.id) is uas and list(dialogs) == [uas]
    bye = their_request(uas, "BYE", 6)
    assert dialogs.match_request(bye) is uas  # §12.2.2: To tag = local, From tag = remote
    assert dialogs.match_request(THEIR_INVITE) is None  # no To tag: not in a dialog
    stranger = Request("BYE", bye.uri, bye.headers.replace("Call-ID", "nope"))
    assert dialogs.match_request(stranger) is None
    ours = uas.respond(THEIR_INVITE, 200)
    reparsed = parse_message(ours.serialize())
    assert isinstance(reparsed, Response)
    assert dialogs.match_response(reparsed) is None  # their From tag is not one of our local tags
    assert dialogs.match_response(make_response(our_invite(), 180)) is None
    dialogs.discard(uas.id)
    dialogs.discard(uas.id)  # idempotent
    assert len(dialogs) == 0 and dialogs.get(DialogId("their-call@192.0.2.4", "alicetag", "bobtag")) is None


@given(
    st.lists(
        st.tuples(st.sampled_from([100, 180, 183, 200, 202, 486, 603]), st.sampled_from("abcd")), max_size=20
    )
)
def test_random_fork_responses(responses: list[tuple[int, str]]) -> None:
    """Whatever the forks answer: one confirmed dialog at most, every 2xx ACKed, a BYE for each
    fork answering after the winner (once), no error but DialogError."""
    dialogs = DialogSet(ENDPOINT)
    invite = our_invite()
    winner: str | None = None
    failed = False
    byed: set[str] = set()
    for status, tag in responses:
        try:
            outcome = dialogs.on_invite_response(invite, fork_response(invite, status, tag, tag))
        except DialogError:
            continue
        if 200 <= status < 300:
            assert outcome.ack is not None and str(outcome.ack.cseq) == "10 ACK"
            winner = winner or (None if failed else tag)
            assert (outcome.bye is not None) == (tag != winner and tag not in byed)
            if outcome.bye is not None:
                byed.add(tag)
        else:
            assert outcome.ack is None and outcome.bye is None
            failed = failed or status >= 300
        confirmed = [d for d in dialogs if d.state is DialogState.CONFIRMED]
        assert len(confirmed) <= 1 and all(d.id.remote_tag == winner for d in confirmed)
