"""A dialog as plain JSON and back (issue 34: a call survives the loss of its instance): UAC and UAS
dialogs built from real parsed messages, taken through a random history, come back from
``json.loads(json.dumps(d.to_dict()))`` with the same state and build the same next request; malformed
data raises SnapshotError naming the field, and nothing else."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sipcore import Request, Response, make_response, parse_message, parse_name_addr
from sipcore.dialogs.dialog import Dialog, DialogState, Role
from sipcore.dialogs.requests import Endpoint, build_invite
from sipcore.dialogs.snapshot import SnapshotError
from tests.conftest import examples

SDP = b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n"
ENDPOINTS = (
    Endpoint("203.0.113.5", 5060),
    Endpoint("2001:db8::5", 5061, "TCP", supported=("timer", "100rel"), contact_user="gw"),
    Endpoint("gw.example.org", None, "TLS", user_agent="gw/1 (test)"),
)
tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
names = st.one_of(st.none(), st.sampled_from(["Bob", "Jürgen Ölberg", 'The "boss"', "x y z"]))
hosts = st.sampled_from(["p1.example.com", "192.0.2.9", "[2001:db8::9]", "proxy.example.net:5070"])


def _parse(data: bytes) -> Request | Response:
    return parse_message(data)


def _routes(draw: st.DrawFn) -> list[str]:
    count = draw(st.integers(0, 3))
    strict_first = draw(st.booleans())
    return [
        f"<sip:{draw(hosts)}{'' if i == 0 and strict_first else ';lr'}>" for i in range(count)
    ]  # fmt: skip


@st.composite
def uac_dialogs(draw: st.DrawFn) -> Dialog:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    scheme = draw(st.sampled_from(["sip", "sips"]))
    to = parse_name_addr(f"<{scheme}:bob@pbx.example.org>")
    alice = parse_name_addr("<sip:alice@gw.example.org>")
    invite = build_invite(endpoint, from_=alice, to=to, body=SDP, cseq=draw(st.integers(1, 2**20)))
    parsed = _parse(invite.serialize())
    assert isinstance(parsed, Request)
    display = draw(names)
    contact = (
        f"{'' if display is None else json.dumps(display)} <sip:bob@192.0.2.4:{draw(st.integers(1, 65535))}>"
    )
    headers = [("Record-Route", r) for r in _routes(draw)] + [("Contact", contact)]
    status = draw(st.sampled_from([180, 183, 200]))
    answer = _parse(make_response(parsed, status, to_tag=draw(tokens), headers=tuple(headers)).serialize())
    assert isinstance(answer, Response)
    return Dialog.from_uac_response(
        parsed, answer, endpoint, secure_transport=endpoint.secure, rng=random.Random(1)
    )


@st.composite
def uas_dialogs(draw: st.DrawFn) -> Dialog:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    routes = _routes(draw)
    record_route = f"Record-Route: {', '.join(routes)}\r\n" if routes else ""
    display = draw(names)
    from_name = "" if display is None else json.dumps(display) + " "
    raw = (
        f"INVITE sip:alice@203.0.113.5:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK{draw(tokens)}\r\n{record_route}"
        f"Max-Forwards: 70\r\nFrom: {from_name}<sip:bob@pbx.example.org>;tag={draw(tokens)}\r\n"
        f"To: <sip:alice@gw.example.org>\r\nCall-ID: {draw(tokens)}@192.0.2.4\r\n"
        f"CSeq: {draw(st.integers(0, 2**31 - 1))} INVITE\r\nContact: <sip:bob@192.0.2.4:5062>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    invite = _parse(raw)
    assert isinstance(invite, Request)
    return Dialog.from_uas_request(invite, endpoint, local_tag=draw(tokens), rng=random.Random(1))


def _their(dialog: Dialog, method: str, seq: int, contact: str | None = None) -> Request:
    """A request of the far end in ``dialog``, as parsed off the wire."""
    extra = f"Contact: {contact}\r\n" if contact is not None else ""
    raw = (
        f"{method} {dialog.contact.uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKx{seq}\r\n"
        f"Max-Forwards: 70\r\nFrom: {dialog.remote_uri}\r\nTo: {dialog.local_uri}\r\n"
        f"Call-ID: {dialog.id.call_id}\r\nCSeq: {seq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()
    parsed = _parse(raw)
    assert isinstance(parsed, Request)
    return parsed


def _their_2xx(dialog: Dialog) -> Response:
    """The far end's 2xx to the INVITE of a UAC dialog, as parsed off the wire (RFC 3261 §13.2.2.4)."""
    raw = (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKi\r\nFrom: {dialog.local_uri}\r\n"
        f"To: {dialog.remote_uri}\r\nCall-ID: {dialog.id.call_id}\r\nCSeq: {dialog.invite_cseq} INVITE\r\n"
        f"Contact: <sip:bob@192.0.2.44:5064>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    parsed = _parse(raw)
    assert isinstance(parsed, Response)
    return parsed


@st.composite
def lived_dialogs(draw: st.DrawFn) -> Dialog:
    """A dialog of either side after a random history: confirmed or not, requests both ways, a target
    refresh, re-INVITEs left pending, a BYE."""
    dialog = draw(st.one_of(uac_dialogs(), uas_dialogs()))
    if dialog.state is DialogState.EARLY and draw(st.booleans()):
        if dialog.role is Role.UAS:
            dialog.respond(_their(dialog, "INVITE", dialog.invite_cseq), 200)
        else:
            dialog.receive_response(_their_2xx(dialog))
    seq = dialog.remote_cseq or 0
    for step in draw(
        st.lists(st.sampled_from(["info", "their-info", "refresh", "reinvite", "bye"]), max_size=5)
    ):
        if dialog.state is not DialogState.CONFIRMED:
            break
        if step == "info":
            dialog.create_request("INFO")
        elif step == "their-info":
            seq += draw(st.integers(1, 5))
            dialog.receive_request(_their(dialog, "INFO", seq))
        elif step == "refresh" and not (dialog.pending_in_invite or dialog.pending_out_invite):
            seq += 1
            dialog.receive_request(_their(dialog, "INVITE", seq, "<sip:bob@198.51.100.7:5099>"))
        elif step == "reinvite" and not (dialog.pending_in_invite or dialog.pending_out_invite):
            dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
        elif step == "bye":
            dialog.create_request("BYE")
    return dialog


def _state(dialog: Dialog) -> dict[str, Any]:
    return {
        name: getattr(dialog, name)
        for name in (
            "id", "role", "state", "local_uri", "remote_uri", "remote_target", "route_set", "invite_cseq",
            "local_cseq", "remote_cseq", "endpoint", "secure", "contact", "reason", "pending_out_invite",
            "pending_in_invite",
        )
    }  # fmt: skip


def _comparable(request: Request) -> str:
    text = request.serialize().decode()
    return "\r\n".join(line for line in text.split("\r\n") if not line.startswith("Via:"))


@settings(max_examples=examples(150), deadline=None)
@given(lived_dialogs())
def test_a_dialog_comes_back_from_json_with_the_same_state(dialog: Dialog) -> None:
    event(f"{dialog.role.name} {dialog.state.name} routes={len(dialog.route_set)}")
    data = json.loads(json.dumps(dialog.to_dict()))  # plain JSON: str, int, bool, None, lists, objects
    assert data == dialog.to_dict()
    back = Dialog.from_dict(data)
    assert _state(back) == _state(dialog)
    assert back.to_dict() == dialog.to_dict()
    if dialog.state is DialogState.CONFIRMED:  # the same next request (RFC 3261 §12.2.1.1), Via aside
        assert _comparable(back.create_request("INFO")) == _comparable(dialog.create_request("INFO"))
        their = _their(dialog, "OPTIONS", (dialog.remote_cseq or 0) + 1)
        assert back.receive_request(their) == dialog.receive_request(their)
        assert back.local_cseq == dialog.local_cseq and back.remote_cseq == dialog.remote_cseq


@settings(max_examples=examples(20), deadline=None)
@given(uac_dialogs())
def test_from_dict_on_another_endpoint(dialog: Dialog) -> None:
    moved = Dialog.from_dict(dialog.to_dict(), ENDPOINTS[0])
    assert moved.endpoint == ENDPOINTS[0] and moved.contact == dialog.contact  # the contact is the data's


GOOD = Dialog.from_uas_request(
    parse_message(
        b"INVITE sip:alice@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:bob@pbx.example.org>;tag=b1\r\nTo: <sip:alice@gw.example.org>\r\n"
        b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@192.0.2.4>\r\nContent-Length: 0\r\n\r\n"
    ),  # type: ignore[arg-type]
    ENDPOINTS[0],
    local_tag="a1",
).to_dict()


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(data)
    *parents, last = path.split(".")
    target = broken
    for part in parents:
        target = target[part]
    if value is _MISSING:
        del target[last]
    else:
        target[last] = value
    return broken


_MISSING = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "dialog.version: expected 1"),
        ("id", "c1", "dialog.id: expected an object"),
        ("id.call_id", _MISSING, "dialog.id.call_id: missing"),
        ("id.call_id", "", "dialog.id.call_id: expected a non-empty string"),
        ("id.call_id", "c 1", "dialog.id.call_id: invalid token"),
        ("id.local_tag", "a1\r\nX: y", "dialog.id.local_tag: control character"),
        ("id.remote_tag", 7, "dialog.id.remote_tag: expected a string"),
        ("role", "proxy", "dialog.role: expected one of"),
        ("state", None, "dialog.state: expected one of"),
        ("local_uri", "<sip:alice@gw.example.org>;tag=zz", "dialog.local_uri: tag 'zz'"),
        ("remote_uri", "<sip:bob@pbx.example.org", "dialog.remote_uri: unterminated"),
        ("remote_target", "not a uri", "dialog.remote_target: invalid URI"),
        ("route_set", "<sip:p1;lr>", "dialog.route_set: expected a list"),
        ("route_set", ["<sip:p1;lr>", 5], r"dialog.route_set\[1\]: expected a string"),
        ("route_set", ["<sip:p1;lr>", "<>"], r"dialog.route_set\[1\]: invalid URI"),
        ("invite_cseq", -1, "dialog.invite_cseq: expected an integer"),
        ("invite_cseq", True, "dialog.invite_cseq: expected an integer"),
        ("local_cseq", 2**32, "dialog.local_cseq: expected an integer"),
        ("remote_cseq", "1", "dialog.remote_cseq: expected an integer"),
        ("secure", 0, "dialog.secure: expected true or false"),
        ("contact", _MISSING, "dialog.contact: missing"),
        ("endpoint.transport", "carrier-pigeon", "dialog.endpoint: invalid transport"),
        ("endpoint.port", 0, "dialog.endpoint.port: expected an integer in 1..65535"),
        ("pending_in_invite", "no", "dialog.pending_in_invite: expected true or false"),
    ],
)
def test_malformed_data_names_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=message) as caught:
        Dialog.from_dict(_set(GOOD, path, value))
    assert isinstance(caught.value, ValueError)  # the package's error, and a ValueError


def test_not_an_object() -> None:
    with pytest.raises(SnapshotError, match="dialog: expected an object, got list"):
        Dialog.from_dict([])  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
PATHS = [
    *(k for k in GOOD if k not in ("id", "endpoint")),
    *(f"id.{k}" for k in GOOD["id"]),
    *(f"endpoint.{k}" for k in GOOD["endpoint"]),
]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_any_json_in_any_field_gives_a_dialog_or_a_snapshot_error(changes: list[tuple[str, Any]]) -> None:
    data = GOOD
    for path, value in changes:
        data = _set(data, path, value)
    with contextlib.suppress(SnapshotError):
        Dialog.from_dict(data)
