"""Dialogs (RFC 3261 §12-§15): creation on both sides, route sets, CSeq rules, in-dialog requests
checked header by header, re-INVITE glare, every (state, event) pair; forking in test_dialogset."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import BadRequest, Request, Response, SIPError, make_response, parse_message, parse_name_addr
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.dialog import TABLE, Dialog, DialogError, DialogEvent, DialogId, DialogState, Role
from sipcore.dialogs.requests import Endpoint, build_invite

ENDPOINT = Endpoint("203.0.113.5", 5060)
ALICE = parse_name_addr("<sip:alice@gw.example.org>")
BOB = parse_name_addr("<sip:bob@pbx.example.org>")
SDP = b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n"
# As the UAS copies them: the proxy next to it (p2) first, the one next to us (p1) last.
RECORD_ROUTE = (("Record-Route", "<sip:p2.example.com;lr>"), ("Record-Route", "<sip:p1.example.com;lr>"))
BOB_CONTACT = ("Contact", "<sip:bob@192.0.2.4:5062>")


def reparse(message: Request | Response) -> Request | Response:
    return parse_message(message.serialize())


def request(message: Request | Response) -> Request:
    assert isinstance(message, Request)
    return message


def response_to(
    sent: Request, status: int, tag: str | None = "bobtag", headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    built = make_response(sent, status, to_tag=tag, headers=headers)
    if tag is None or status == 100:
        built = Response(status, built.reason, built.headers.replace("To", str(BOB)))
    parsed = reparse(built)
    assert isinstance(parsed, Response)
    return parsed


def our_invite() -> Request:
    return build_invite(ENDPOINT, from_=ALICE, to=BOB, body=SDP, call_id="call-1@gw", cseq=10)


def uac_dialog(
    status: int = 180, headers: tuple[tuple[str, str], ...] = (*RECORD_ROUTE, BOB_CONTACT)
) -> Dialog:
    invite = our_invite()
    return Dialog.from_uac_response(invite, response_to(invite, status, headers=headers), ENDPOINT)


THEIR_INVITE = request(
    parse_message(
        b"INVITE sip:alice@203.0.113.5:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKbob\r\n"
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
        b"Max-Forwards: 68\r\nFrom: Bob <sip:bob@pbx.example.org>;tag=bobtag\r\n"
        b"To: <sip:alice@gw.example.org>\r\nCall-ID: their-call@192.0.2.4\r\nCSeq: 5 INVITE\r\n"
        b"Contact: <sip:bob@192.0.2.4:5062>\r\nContent-Type: application/sdp\r\n"
        b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
    )
)


def their_request(dialog: Dialog, method: str, seq: int, contact: str | None = None) -> Request:
    """A request the remote side sends in the dialog (From = remote, To = local)."""
    headers = THEIR_INVITE.headers.replace("CSeq", f"{seq} {method}").replace("To", str(dialog.local_uri))
    headers = headers.replace("From", str(dialog.remote_uri)).replace("Call-ID", dialog.id.call_id)
    headers = headers.remove("Record-Route").remove("Contact")
    if contact is not None:
        headers = headers.add("Contact", contact)
    return Request(method, dialog.contact.uri, headers)


def uas_dialog() -> Dialog:
    return Dialog.from_uas_request(THEIR_INVITE, ENDPOINT, local_tag="alicetag", rng=random.Random(1))


# -- creation ---------------------------------------------------------------------------------


def test_uac_dialog_from_provisional_then_2xx() -> None:
    invite = our_invite()
    early = response_to(invite, 183, headers=(*RECORD_ROUTE, BOB_CONTACT))
    dialog = Dialog.from_uac_response(invite, early, ENDPOINT)
    assert dialog.state is DialogState.EARLY and dialog.role is Role.UAC
    assert dialog.id == DialogId("call-1@gw", str(invite.from_.tag if invite.from_ else ""), "bobtag")
    # RFC 3261 §12.1.2: the route set is the Record-Route reversed.
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4:5062"
    assert dialog.local_cseq == 10 and dialog.remote_cseq is None and not dialog.secure
    assert dialog.remote_uri.tag == "bobtag" and dialog.local_uri == invite.from_
    # §13.2.2.4: the 2xx confirms it and its Record-Route recomputes the route set.
    ok = response_to(
        invite, 200, headers=(("Record-Route", "<sip:p3.example.com;lr>"), ("Contact", "<sip:b@h>"))
    )
    dialog.receive_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p3.example.com;lr"]
    assert str(dialog.remote_target) == "sip:b@h"


def test_uac_dialog_needs_a_to_tag_and_a_1xx_or_2xx() -> None:
    invite = our_invite()
    with pytest.raises(DialogError, match="creates no dialog"):
        Dialog.from_uac_response(invite, response_to(invite, 180, tag=None), ENDPOINT)
    with pytest.raises(DialogError, match="creates no dialog"):
        Dialog.from_uac_response(invite, response_to(invite, 486), ENDPOINT)
    # A 1xx without Contact: the remote target stays the Request-URI until one comes.
    dialog = Dialog.from_uac_response(invite, response_to(invite, 180), ENDPOINT)
    assert dialog.remote_target == invite.uri
    dialog.receive_response(response_to(invite, 180, headers=(BOB_CONTACT,)))
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4:5062"


def test_secure_flag() -> None:
    invite = build_invite(ENDPOINT, from_=ALICE, to=parse_name_addr("<sips:bob@pbx.example.org>"))
    ok = response_to(invite, 200, headers=(BOB_CONTACT,))
    assert Dialog.from_uac_response(invite, ok, ENDPOINT, secure_transport=True).secure  # §12.1.2
    assert not Dialog.from_uac_response(invite, ok, ENDPOINT, secure_transport=False).secure
    assert not Dialog.from_uac_response(
        our_invite(), response_to(our_invite(), 200), ENDPOINT, secure_transport=True
    ).secure


def test_uas_dialog_and_its_responses() -> None:
    dialog = uas_dialog()
    assert dialog.id == DialogId("their-call@192.0.2.4", "alicetag", "bobtag")
    assert dialog.state is DialogState.EARLY and dialog.role is Role.UAS
    # RFC 3261 §12.1.1: route set = Record-Route in order, remote CSeq = the INVITE's.
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert dialog.remote_cseq == 5 and dialog.local_cseq is None
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4:5062"
    ringing = dialog.respond(THEIR_INVITE, 180)
    assert ringing.to is not None and ringing.to.tag == "alicetag"
    assert ringing.headers.get_all("Record-Route") == THEIR_INVITE.headers.get_all("Record-Route")
    assert [str(c) for c in ringing.contacts] == ["<sip:203.0.113.5:5060>"]
    assert dialog.state is DialogState.EARLY
    ok = dialog.respond(THEIR_INVITE, 200, body=SDP, content_type="application/sdp")
    assert dialog.state is DialogState.CONFIRMED and ok.body == SDP
    assert ok.headers.get("Content-Type") == "application/sdp" and ok.headers.get("Allow") is not None
    assert ok.headers.get_all("Via") == THEIR_INVITE.headers.get_all("Via")
    assert dialog.receive_request(their_request(dialog, "ACK", 5)) is None
    with pytest.raises(DialogError, match="content type"):
        dialog.respond(THEIR_INVITE, 200, body=b"x")
    with pytest.raises(DialogError, match="not in dialog"):
        dialog.respond(our_invite(), 200)


def test_uas_dialog_refuses_bad_invites() -> None:
    with pytest.raises(BadRequest, match="without Contact"):
        Dialog.from_uas_request(
            Request("INVITE", THEIR_INVITE.uri, THEIR_INVITE.headers.remove("Contact")), ENDPOINT
        )
    tagged = THEIR_INVITE.headers.replace("To", "<sip:alice@gw.example.org>;tag=x")
    with pytest.raises(DialogError, match="existing dialog"):
        Dialog.from_uas_request(Request("INVITE", THEIR_INVITE.uri, tagged), ENDPOINT)
    with pytest.raises(DialogError, match="creates no dialog"):
        Dialog.from_uas_request(Request("OPTIONS", THEIR_INVITE.uri, THEIR_INVITE.headers), ENDPOINT)
    with pytest.raises(ValueError, match="dialog id"):
        DialogId("", "a", "b")


def test_uas_rejection_and_cancelled_early_dialog() -> None:
    dialog = uas_dialog()
    busy = dialog.respond(THEIR_INVITE, 486)
    assert busy.to is not None and busy.to.tag == "alicetag" and not busy.contacts
    assert dialog.state is DialogState.TERMINATED
    # §15.1.2: a BYE on an early dialog ends it; the INVITE is then answered 487.
    dialog = uas_dialog()
    assert dialog.receive_request(their_request(dialog, "BYE", 6)) is None
    assert dialog.state is DialogState.TERMINATED
    assert dialog.respond(their_request(dialog, "BYE", 6), 200).status == 200
    assert dialog.respond(THEIR_INVITE, 487).status == 487
    with pytest.raises(DialogError, match=r"SEND_2XX.*TERMINATED"):
        dialog.respond(THEIR_INVITE, 200)


# -- requests in the dialog --------------------------------------------------------------------


def check_in_dialog(dialog: Dialog, sent: Request, method: str, seq: int) -> None:
    """RFC 3261 §12.2.1.1 header by header."""
    parsed = request(reparse(sent))
    assert parsed.method == method
    assert parsed.to == dialog.remote_uri and parsed.to is not None and parsed.to.tag == dialog.id.remote_tag
    assert (
        parsed.from_ == dialog.local_uri
        and parsed.from_ is not None
        and parsed.from_.tag == dialog.id.local_tag
    )
    assert parsed.call_id == dialog.id.call_id
    assert str(parsed.cseq) == f"{seq} {method}"
    assert parsed.headers.get("Max-Forwards") == "70"
    via = parsed.top_via
    assert (
        via is not None
        and via.branch is not None
        and via.branch.startswith("z9hG4bK")
        and len(parsed.vias) == 1
    )


def test_ack_for_2xx_loose_routing() -> None:
    invite = our_invite()
    invite = Request(
        "INVITE", invite.uri, invite.headers.add("Proxy-Authorization", 'Digest username="a"'), SDP
    )
    dialog = Dialog.from_uac_response(
        invite, response_to(invite, 200, headers=(*RECORD_ROUTE, BOB_CONTACT)), ENDPOINT
    )
    ack = dialog.ack(invite)
    check_in_dialog(dialog, ack, "ACK", 10)  # §13.2.2.4: the INVITE's CSeq number
    assert str(ack.uri) == "sip:bob@192.0.2.4:5062"  # loose: Request-URI = remote target
    assert ack.headers.get_all("Route") == ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    assert (
        ack.top_via is not None and invite.top_via is not None and ack.top_via.branch != invite.top_via.branch
    )
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="a"'  # same credentials
    assert not ack.body and "Contact" not in ack.headers
    # A retransmitted 2xx is ACKed with the same ACK.
    dialog.receive_response(response_to(invite, 200, headers=(BOB_CONTACT,)))
    assert dialog.ack(invite) is ack
    assert dialog.local_cseq == 10  # ACK takes no new CSeq


def test_ack_and_bye_strict_routing() -> None:
    strict = (
        ("Record-Route", "<sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:p1.example.com>"),
        BOB_CONTACT,
    )
    dialog = uac_dialog(200, strict)
    ack = dialog.ack(our_invite())
    # §12.2.1.1: first route strict -> Request-URI = that route, Route = rest + remote target.
    assert str(ack.uri) == "sip:p1.example.com"
    assert ack.headers.get_all("Route") == ("<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4:5062>")
    bye = dialog.create_request("BYE")
    check_in_dialog(dialog, bye, "BYE", 11)
    assert str(bye.uri) == "sip:p1.example.com"
    assert bye.headers.get_all("Route") == ("<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4:5062>")
    assert dialog.state is DialogState.TERMINATED and "Contact" not in bye.headers
    with pytest.raises(DialogError, match=r"SEND_REQUEST.*TERMINATED"):
        dialog.create_request("INFO")


def test_ack_without_route_set_and_in_early_state() -> None:
    dialog = uac_dialog(200, (BOB_CONTACT,))
    ack = dialog.ack(our_invite(), body=SDP, content_type="application/sdp")
    assert str(ack.uri) == "sip:bob@192.0.2.4:5062" and "Route" not in ack.headers and ack.body == SDP
    with pytest.raises(DialogError, match=r"SEND_ACK.*EARLY"):
        uac_dialog(180).ack(our_invite())
    with pytest.raises(DialogError, match="reuses"):
        dialog.create_request("ACK")


def test_info_with_dtmf_relay() -> None:
    dialog = uac_dialog(200)
    body = b"Signal=5\r\nDuration=160\r\n"
    info = dialog.create_request("INFO", body=body, content_type="application/dtmf-relay")
    check_in_dialog(dialog, info, "INFO", 11)
    parsed = request(reparse(info))
    assert parsed.body == body and parsed.headers.get("Content-Type") == "application/dtmf-relay"
    assert "Contact" not in parsed.headers  # not a target refresh
    assert dialog.create_request("INFO", body=b"x", content_type="text/plain").cseq is not None
    assert dialog.local_cseq == 12 and dialog.state is DialogState.CONFIRMED


def test_reinvite_refreshes_the_target_and_glare() -> None:
    dialog = uac_dialog(200)
    reinvite = dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    check_in_dialog(dialog, reinvite, "INVITE", 11)
    assert [str(c) for c in reinvite.contacts] == ["<sip:203.0.113.5:5060>"] and reinvite.body == SDP
    assert dialog.pending_out_invite
    with pytest.raises(DialogError, match="already in progress"):
        dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    # §14.2: their INVITE while ours is pending -> 491.
    glare = dialog.receive_request(their_request(dialog, "INVITE", 1, "<sip:bob@198.51.100.9>"))
    assert glare is not None and glare.status == 491 and glare.to is not None
    # §12.2.1.2: the 2xx to a target refresh replaces the remote target.
    dialog.receive_response(response_to(reinvite, 200, headers=(("Contact", "<sip:bob@198.51.100.7>"),)))
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7" and not dialog.pending_out_invite
    ack = dialog.ack(reinvite)
    assert str(ack.cseq) == "11 ACK" and str(ack.uri) == "sip:bob@198.51.100.7"
    assert ack.headers.get("Route") == "<sip:p1.example.com;lr>"
    # An UPDATE (RFC 3311) is a target refresh too and carries a Contact.
    update = dialog.create_request("UPDATE", body=SDP, content_type="application/sdp")
    assert update.contacts and str(update.cseq) == "12 UPDATE"
    # REFER starts the refer subscription and its NOTIFYs carry it on: both carry our Contact
    # (RFC 3261 §8.1.1.8, RFC 6665 §4.1.2.2; chan_pjsip answers a REFER without one 400), though
    # neither is a target refresh of the INVITE dialog
    for method in "REFER", "NOTIFY":
        sent = request(reparse(dialog.create_request(method, headers=(("Refer-To", "<sip:c@h>"),))))
        assert [str(c) for c in sent.contacts] == ["<sip:203.0.113.5:5060>"], method
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7"
    # A 491 to ours: retry after the §14.1 delay.
    again = dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    dialog.receive_response(response_to(again, 491))
    assert not dialog.pending_out_invite and dialog.state is DialogState.CONFIRMED


def test_glare_retry_delays() -> None:
    uac = uac_dialog(200)
    uac._rng = random.Random(7)
    uas = uas_dialog()
    for _ in range(200):
        owner, other = uac.glare_retry_delay(), uas.glare_retry_delay()
        assert 2.1 <= owner <= 4.0 and 0.0 <= other <= 2.0  # RFC 3261 §14.1
        assert round(owner * 100) == pytest.approx(owner * 100) and round(other * 100) == pytest.approx(
            other * 100
        )


def test_remote_cseq_and_target_refresh_uas() -> None:
    dialog = uas_dialog()
    dialog.respond(THEIR_INVITE, 200, body=SDP, content_type="application/sdp")
    assert dialog.receive_request(their_request(dialog, "INFO", 6)) is None
    assert dialog.remote_cseq == 6
    # §12.2.2: lower CSeq -> 500.
    late = dialog.receive_request(their_request(dialog, "INFO", 4))
    assert late is not None and late.status == 500 and late.to is not None and late.to.tag == "alicetag"
    assert dialog.remote_cseq == 6
    reinvite = their_request(dialog, "INVITE", 7, "<sip:bob@198.51.100.20>")
    assert dialog.receive_request(reinvite) is None
    assert str(dialog.remote_target) == "sip:bob@198.51.100.20"  # §12.2.2
    # §14.2: a second INVITE before our final response to the first -> 500 with Retry-After 0-10.
    second = dialog.receive_request(their_request(dialog, "INVITE", 8))
    assert second is not None and second.status == 500
    assert 0 <= int(second.headers.get("Retry-After") or "-1") <= 10
    ok = dialog.respond(reinvite, 200, body=SDP, content_type="application/sdp")
    assert ok.contacts and not dialog.pending_in_invite
    # Our own requests in a UAS dialog start a local CSeq of their own.
    bye = dialog.create_request("BYE")
    assert str(bye.cseq) == "1 BYE" and bye.to is not None and bye.to.tag == "bobtag"
    assert [str(r) for r in bye.headers.get_all("Route")] == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    gone = dialog.receive_request(their_request(dialog, "INFO", 9))
    assert gone is not None and gone.status == 481  # terminated: no such dialog
    assert dialog.receive_request(their_request(dialog, "ACK", 7)) is None


def test_early_dialog_rules() -> None:
    with pytest.raises(DialogError, match="early dialog"):
        uac_dialog(180).create_request("INVITE", body=SDP, content_type="application/sdp")
    with pytest.raises(DialogError, match="callee may not send BYE"):
        uas_dialog().create_request("BYE")
    early = uac_dialog(180)
    assert early.create_request("BYE").method == "BYE" and early.state is DialogState.TERMINATED  # §15


@pytest.mark.parametrize("status", [408, 481])
def test_408_481_end_the_dialog(status: int) -> None:
    dialog = uac_dialog(200)
    info = dialog.create_request("INFO", body=b"x", content_type="text/plain")
    dialog.receive_response(response_to(info, status))
    assert dialog.state is DialogState.TERMINATED and dialog.reason == f"{status} to INFO"  # §12.2.1.2


def test_record_request_after_digest_retry() -> None:
    dialog = uac_dialog(200)
    reinvite = dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    challenge = response_to(reinvite, 407, headers=(("Proxy-Authenticate", 'Digest realm="r", nonce="n"'),))
    dialog.receive_response(challenge)
    retry = DigestClient("alice", "secret").authorize(reinvite, challenge)
    dialog.record_request(retry)
    assert dialog.local_cseq == 12 and dialog.pending_out_invite
    with pytest.raises(DialogError, match="not above"):
        dialog.record_request(retry)
    other = Request("INFO", retry.uri, retry.headers.replace("Call-ID", "x").replace("CSeq", "99 INFO"))
    with pytest.raises(DialogError, match="not in dialog"):
        dialog.record_request(other)


# -- every (state, event) pair ---------------------------------------------------------------


def dialog_in(state: DialogState, role: Role) -> Dialog:
    dialog = uac_dialog(180) if role is Role.UAC else uas_dialog()
    if state is not DialogState.EARLY:
        dialog.pending_in_invite = dialog.pending_out_invite = False
        dialog.state = DialogState.CONFIRMED
    if state is DialogState.TERMINATED:
        dialog.terminate("test")
    return dialog


def message_for(event: DialogEvent, dialog: Dialog) -> Request | Response | None:
    invite = our_invite() if dialog.role is Role.UAC else THEIR_INVITE
    status = {"1XX": 180, "2XX": 200, "FAILURE": 486}
    kind = event.name.partition("_")[2]
    if kind in status:
        return response_to(invite, status[kind])
    info = their_request(dialog, "INFO", 100)
    messages: dict[DialogEvent, Request | Response] = {
        DialogEvent.SEND_REQUEST: info,
        DialogEvent.RECV_REQUEST: info,
        DialogEvent.SEND_RESPONSE: response_to(info, 200),
        DialogEvent.RECV_RESPONSE: response_to(info, 200),
    }
    return messages.get(event)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(DialogState))
@pytest.mark.parametrize("event", list(DialogEvent))
def test_every_state_event_pair(state: DialogState, event: DialogEvent, role: Role) -> None:
    dialog = dialog_in(state, role)
    message = message_for(event, dialog)
    if (state, event) in TABLE:
        dialog.handle(event, message)
        ending = (DialogEvent.RECV_FAILURE, DialogEvent.SEND_FAILURE, DialogEvent.TERMINATE)
        if state is DialogState.TERMINATED or event in ending:
            assert dialog.state is DialogState.TERMINATED
        elif state is DialogState.CONFIRMED or event in (DialogEvent.RECV_2XX, DialogEvent.SEND_2XX):
            assert dialog.state is DialogState.CONFIRMED
        else:
            assert dialog.state is DialogState.EARLY
    else:
        with pytest.raises(DialogError, match=f"{event.name}.*{state.name}"):
            dialog.handle(event, message)
        assert dialog.state is state


def test_table_names_existing_handlers_and_wrong_messages() -> None:
    for handler in set(TABLE.values()):
        assert getattr(Dialog, handler.__name__) is handler  # the class's own handler, by reference
    with pytest.raises(DialogError, match="expected a request"):
        uac_dialog(200).handle(DialogEvent.RECV_REQUEST, None)
    with pytest.raises(DialogError, match="expected a response"):
        uac_dialog(200).handle(DialogEvent.RECV_RESPONSE, THEIR_INVITE)


@given(
    st.lists(st.tuples(st.sampled_from(list(DialogEvent)), st.integers(0, 3)), max_size=25),
    st.sampled_from(list(Role)),
)
def test_random_event_sequences_raise_only_sip_errors(
    events: list[tuple[DialogEvent, int]], role: Role
) -> None:
    dialog = dialog_in(DialogState.EARLY, role)
    choices: list[Request | Response | None] = [None, THEIR_INVITE, response_to(THEIR_INVITE, 486)]
    for event, pick in events:
        message = message_for(event, dialog) if pick == 3 else choices[pick]
        with contextlib.suppress(SIPError):
            dialog.handle(event, message)
        assert dialog.state in DialogState
