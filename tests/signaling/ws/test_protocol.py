"""The WebSocket JSON codec, without sockets: every request type valid and invalid, events, fuzzing."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.calls.boundary.caller import CallerDetails
from gateway.signaling import conference
from gateway.signaling import events as ev
from gateway.signaling.audio_stream.ws_request import AudioStream
from gateway.signaling.errors import BadRequest, SignalingError, TooLarge, UnknownType
from gateway.signaling.ws.protocol import (
    REQUEST_TYPES,
    Answer,
    Call,
    CallMessage,
    Cancel,
    Dtmf,
    Hangup,
    Hold,
    Ice,
    Info,
    Login,
    Logout,
    Merge,
    Message,
    Ping,
    Reattach,
    Record,
    Reject,
    Reoffer,
    Resume,
    Split,
    Transfer,
    decode_request,
)
from sdp import candidate_from_json
from tests.conftest import examples
from tests.signaling.harness import ANSWER_SDP, OFFER_SDP

CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


def decode(message: dict[str, Any]) -> object:
    return decode_request(json.dumps(message))


VALID: list[tuple[dict[str, Any], object]] = [
    ({"type": "login", "user": "alice", "secret": "s"}, Login(None, user="alice", secret="s")),
    ({"type": "login", "token": "abc.def", "id": 1}, Login(1, token="abc.def")),
    ({"type": "call", "id": "a", "to": "2000", "sdp": OFFER_SDP}, Call("a", "2000", OFFER_SDP)),
    ({"type": "call", "id": "b", "to": "030 123-45", "sdp": OFFER_SDP}, Call("b", "030 123-45", OFFER_SDP)),
    (
        {"type": "call", "to": " sip:bob@pbx ", "sdp": {"type": "offer", "sdp": OFFER_SDP}},
        Call(None, "sip:bob@pbx", OFFER_SDP),
    ),
    ({"type": "answer", "call_id": "c1", "sdp": ANSWER_SDP}, Answer(None, "c1", ANSWER_SDP)),
    ({"type": "answer", "call_id": "c1"}, Answer(None, "c1", None)),
    (
        {"type": "answer", "call_id": "c1", "sdp": {"type": "answer", "sdp": ANSWER_SDP}},
        Answer(None, "c1", ANSWER_SDP),
    ),
    ({"type": "reject", "call_id": "c1"}, Reject(None, "c1", 486)),
    ({"type": "reject", "call_id": "c1", "status": 603}, Reject(None, "c1", 603)),
    ({"type": "cancel", "call_id": "c1"}, Cancel(None, "c1")),
    ({"type": "hangup", "call_id": "c1"}, Hangup(None, "c1")),
    ({"type": "hold", "call_id": "c1"}, Hold(None, "c1")),
    ({"type": "resume", "call_id": "c1"}, Resume(None, "c1")),
    ({"type": "merge", "id": 3, "call_ids": ["c1", "c2"]}, Merge(3, ("c1", "c2"))),
    ({"type": "split", "call_id": "c2"}, Split(None, "c2")),
    ({"type": "dtmf", "call_id": "c1", "digits": "12*#ab"}, Dtmf(None, "c1", "12*#AB", None)),
    ({"type": "record", "call_id": "c1", "action": "pause"}, Record(None, "c1", "pause")),
    ({"type": "dtmf", "call_id": "c1", "digits": "5", "duration_ms": 250}, Dtmf(None, "c1", "5", 250)),
    (
        {"type": "audio_stream", "call_id": "c1", "action": "start", "sample_rate": 16000},
        AudioStream(None, "c1", "start", {"sample_rate": 16000}),
    ),
    (
        {"type": "ice", "call_id": "c1", "candidate": CANDIDATE},
        Ice(None, "c1", candidate_from_json(CANDIDATE)),
    ),
    ({"type": "ice", "call_id": "c1", "candidate": None}, Ice(None, "c1", None)),
    (
        {"type": "info", "call_id": "c1", "content_type": "Application/JSON", "body": '{"a": 1}'},
        Info(None, "c1", "application/json", '{"a": 1}'),
    ),
    ({"type": "message", "id": 9, "to": " 1002 ", "body": "hi"}, Message(9, "1002", "hi")),
    (
        {"type": "message", "id": 10, "call_id": "c1", "body": "in the call ☎"},
        CallMessage(10, "c1", "in the call ☎"),
    ),
    (
        {"type": "call", "to": "2000", "sdp": OFFER_SDP, "headers": {"X-Account": "42"}},
        Call(None, "2000", OFFER_SDP, (("X-Account", "42"),)),
    ),
    ({"type": "ping", "id": 5}, Ping(5)),
    ({"type": "logout", "id": 6}, Logout(6)),
    ({"type": "transfer", "call_id": "c1", "to": " 1003 "}, Transfer(None, "c1", to="1003")),
    ({"type": "transfer", "call_id": "c1", "replaces": "c2"}, Transfer(None, "c1", replaces="c2")),
    ({"type": "reattach", "id": 4, "call_id": "c1", "sdp": OFFER_SDP}, Reattach(4, "c1", OFFER_SDP)),
    ({"type": "reattach", "id": 6, "call_id": "c1"}, Reattach(6, "c1", None)),  # an end-to-end call's
    ({"type": "offer", "id": 5, "call_id": "c1", "sdp": OFFER_SDP}, Reoffer(5, "c1", OFFER_SDP)),
    (
        {"type": "reattach", "call_id": "c1", "sdp": {"type": "offer", "sdp": OFFER_SDP}},
        Reattach(None, "c1", OFFER_SDP),
    ),
    (
        {"type": "call", "to": "1003", "sdp": OFFER_SDP, "transfer_of": "c1"},
        Call(None, "1003", OFFER_SDP, transfer_of="c1"),
    ),
    (
        {"type": "call", "to": "1003", "sdp": OFFER_SDP, "early_answer": True},
        Call(None, "1003", OFFER_SDP, early_answer=True),
    ),
]


@pytest.mark.parametrize(("message", "expected"), VALID, ids=[m["type"] for m, _ in VALID])
def test_valid_requests(message: dict[str, Any], expected: object) -> None:
    assert decode(message) == expected


def test_every_request_type_has_a_valid_example() -> None:
    assert {m["type"] for m, _ in VALID} == set(REQUEST_TYPES)


INVALID: list[tuple[dict[str, Any], str, str | None]] = [
    ({"type": "transfer", "call_id": "c1"}, "bad_request", "to"),
    ({"type": "reattach", "call_id": "c1", "sdp": "hello"}, "bad_request", "sdp"),
    ({"type": "offer", "call_id": "c1"}, "bad_request", "sdp"),
    ({"type": "offer", "sdp": OFFER_SDP}, "bad_request", "call_id"),
    (
        {"type": "offer", "call_id": "c1", "sdp": {"type": "answer", "sdp": OFFER_SDP}},
        "bad_request",
        "sdp.type",
    ),
    ({"type": "reattach", "sdp": OFFER_SDP}, "bad_request", "call_id"),
    (
        {"type": "reattach", "call_id": "c1", "sdp": {"type": "answer", "sdp": OFFER_SDP}},
        "bad_request",
        "sdp.type",
    ),
    ({"type": "transfer", "call_id": "c1", "to": "1003", "replaces": "c2"}, "bad_request", "to"),
    ({"type": "transfer", "call_id": "c1", "replaces": "bad id!"}, "bad_request", "replaces"),
    ({"type": "transfer", "call_id": "c1", "to": "10\n03"}, "bad_request", "to"),
    ({"type": "call", "to": "1003", "sdp": OFFER_SDP, "transfer_of": 5}, "bad_request", "transfer_of"),
    ({"type": "call", "to": "1003", "sdp": OFFER_SDP, "early_answer": 1}, "bad_request", "early_answer"),
    ({"id": 1}, "bad_request", "type"),
    ({"type": 5}, "bad_request", "type"),
    ({"type": "nope"}, "unknown_type", "type"),
    ({"type": "ping", "id": [1]}, "bad_request", "id"),
    ({"type": "ping", "id": "x" * 65}, "bad_request", "id"),
    ({"type": "login"}, "bad_request", "user"),
    ({"type": "login", "user": "alice"}, "bad_request", "secret"),
    ({"type": "login", "user": "Alice!", "secret": "s"}, "bad_request", "user"),
    ({"type": "login", "user": "alice", "secret": 5}, "bad_request", "secret"),
    ({"type": "login", "token": ""}, "bad_request", "token"),
    ({"type": "call", "sdp": OFFER_SDP}, "bad_request", "to"),
    ({"type": "call", "to": "20\n00", "sdp": OFFER_SDP}, "bad_request", "to"),
    ({"type": "call", "to": "20\x1b[2J00", "sdp": OFFER_SDP}, "bad_request", "to"),
    ({"type": "call", "to": "2000"}, "bad_request", "sdp"),
    ({"type": "call", "to": "2000", "sdp": OFFER_SDP, "headers": ["X-Account"]}, "bad_request", "headers"),
    (
        {"type": "call", "to": "2000", "sdp": OFFER_SDP, "headers": {"X-Account": 42}},
        "bad_request",
        "headers",
    ),
    ({"type": "call", "to": "2000", "sdp": "hello"}, "bad_request", "sdp"),
    ({"type": "call", "to": "2000", "sdp": {"type": "answer", "sdp": OFFER_SDP}}, "bad_request", "sdp.type"),
    ({"type": "call", "to": "2000", "sdp": {"type": "offer"}}, "bad_request", "sdp"),
    ({"type": "call", "to": "2000", "sdp": "v=0" + "x" * 50000}, "bad_request", "sdp"),
    ({"type": "answer"}, "bad_request", "call_id"),
    ({"type": "answer", "call_id": "c 1"}, "bad_request", "call_id"),
    ({"type": "answer", "call_id": "c1", "sdp": 3}, "bad_request", "sdp"),
    ({"type": "reject", "call_id": "c1", "status": 200}, "bad_request", "status"),
    ({"type": "reject", "call_id": "c1", "status": 487}, "bad_request", "status"),
    ({"type": "reject", "call_id": "c1", "status": True}, "bad_request", "status"),
    ({"type": "cancel"}, "bad_request", "call_id"),
    ({"type": "merge"}, "bad_request", "call_ids"),
    ({"type": "merge", "call_ids": ["c1"]}, "bad_request", "call_ids"),
    ({"type": "merge", "call_ids": "c1,c2"}, "bad_request", "call_ids"),
    ({"type": "merge", "call_ids": ["c1", 2]}, "bad_request", "call_ids"),
    ({"type": "merge", "call_ids": ["c1", "c 2"]}, "bad_request", "call_ids"),
    ({"type": "split"}, "bad_request", "call_id"),
    ({"type": "hangup", "call_id": 7}, "bad_request", "call_id"),
    ({"type": "hold", "call_id": ""}, "bad_request", "call_id"),
    ({"type": "resume", "call_id": None}, "bad_request", "call_id"),
    ({"type": "dtmf", "call_id": "c1"}, "bad_request", "digits"),
    ({"type": "record", "call_id": "c1"}, "bad_request", "action"),
    ({"type": "record", "call_id": "c1", "action": "rewind"}, "bad_request", "action"),
    ({"type": "record", "action": "start"}, "bad_request", "call_id"),
    ({"type": "dtmf", "call_id": "c1", "digits": "1x"}, "bad_request", "digits"),
    ({"type": "dtmf", "call_id": "c1", "digits": "1", "duration_ms": 5}, "bad_request", "duration_ms"),
    ({"type": "ice", "call_id": "c1"}, "bad_request", "candidate"),
    ({"type": "info", "call_id": "c1", "content_type": "json", "body": "x"}, "bad_request", "content_type"),
    ({"type": "info", "call_id": "c1", "content_type": "text/plain", "body": 5}, "bad_request", "body"),
    ({"type": "info", "content_type": "text/plain", "body": ""}, "bad_request", "call_id"),
    ({"type": "message", "to": "1002"}, "bad_request", "body"),
    ({"type": "message", "to": "10\n02", "body": "hi"}, "bad_request", "to"),
    ({"type": "message", "to": "1002", "body": "x" * 9000}, "bad_request", "body"),
    ({"type": "message", "call_id": "c1", "to": "1002", "body": "hi"}, "bad_request", "to"),
    ({"type": "message", "call_id": "c1"}, "bad_request", "body"),
    ({"type": "message", "call_id": "", "body": "hi"}, "bad_request", "call_id"),
    ({"type": "message", "call_id": "c1", "body": "é" * 4097}, "bad_request", "body"),
    (
        {"type": "ice", "call_id": "c1", "candidate": {"candidate": "garbage", "sdpMid": "0"}},
        "bad_request",
        "candidate",
    ),
    (
        {"type": "ice", "call_id": "c1", "candidate": {"candidate": CANDIDATE["candidate"]}},
        "bad_request",
        "candidate",
    ),
    ({"type": "ice", "call_id": "c1", "candidate": "candidate:1"}, "bad_request", "candidate"),
]


@pytest.mark.parametrize(("message", "code", "field"), INVALID)
def test_invalid_requests_name_the_field(message: dict[str, Any], code: str, field: str | None) -> None:
    with pytest.raises(SignalingError) as info:
        decode(message)
    assert (info.value.code, info.value.field) == (code, field)
    assert info.value.message


def test_not_json_not_object_too_large() -> None:
    with pytest.raises(BadRequest):
        decode_request("{")
    with pytest.raises(BadRequest):
        decode_request(b"\xff\xfe")
    with pytest.raises(BadRequest):
        decode_request("[]")
    with pytest.raises(BadRequest):
        decode_request("[" * 100000 + "]" * 100000, max_bytes=10**6)
    with pytest.raises(TooLarge):
        decode_request(json.dumps({"type": "ping", "x": "y" * 70000}))
    with pytest.raises(UnknownType):
        decode_request('{"type": "x"}')


def test_login_repr_hides_secrets() -> None:
    login = decode({"type": "login", "user": "alice", "secret": "hunter2"})
    assert "hunter2" not in repr(login)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["id", "user", "secret", "token", "to", "sdp", "call_id", "status", "digits", "duration_ms", "candidate"]
)


@settings(max_examples=examples(400), deadline=None)
@given(st.sampled_from(REQUEST_TYPES), st.dictionaries(field_names, json_values, max_size=6))
def test_random_fields_raise_only_signaling_errors(kind: str, fields: dict[str, Any]) -> None:
    with contextlib.suppress(SignalingError):
        decode({**fields, "type": kind})


@settings(max_examples=examples(300), deadline=None)
@given(
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | json_values.map(json.dumps).map(str.encode)
)
def test_random_bytes_raise_only_signaling_errors(data: bytes) -> None:
    with contextlib.suppress(SignalingError):
        decode_request(data)


def test_event_encoding() -> None:
    init = candidate_from_json(CANDIDATE)
    cases: list[tuple[ev.ServerMessage, dict[str, object]]] = [
        (
            ev.Incoming("c1", "sip:2000@pbx", None),
            {
                "type": "incoming",
                "call_id": "c1",
                "from": "sip:2000@pbx",
                "display_name": None,
                "sdp": None,
                "asserted_identity": None,
                "diverted_from": [],
                "headers": {},
            },
        ),
        (
            ev.Incoming(
                "c1",
                "sip:100@pbx",
                "Desk",
                None,
                CallerDetails("sip:+1555@pbx", "Carol", (("sip:9@pbx", "no-answer"),), (("X-Account", "7"),)),
            ),
            {
                "type": "incoming",
                "call_id": "c1",
                "from": "sip:100@pbx",
                "display_name": "Desk",
                "sdp": None,
                "asserted_identity": {"uri": "sip:+1555@pbx", "display_name": "Carol"},
                "diverted_from": [{"uri": "sip:9@pbx", "reason": "no-answer"}],
                "headers": {"X-Account": "7"},
            },
        ),
        (ev.Offer("c1", OFFER_SDP), {"type": "offer", "call_id": "c1", "sdp": OFFER_SDP}),
        (ev.Answer("c1", OFFER_SDP), {"type": "answer", "call_id": "c1", "sdp": OFFER_SDP}),
        (ev.Ringing("c1"), {"type": "ringing", "call_id": "c1"}),
        (ev.EarlyAnswer("c1", ANSWER_SDP), {"type": "answer", "call_id": "c1", "sdp": ANSWER_SDP}),
        (ev.EarlyMedia("c1", ANSWER_SDP), {"type": "early_media", "call_id": "c1", "sdp": ANSWER_SDP}),
        (ev.Connected("c1"), {"type": "connected", "call_id": "c1", "sdp": None}),
        (ev.Held("c1", "local"), {"type": "held", "call_id": "c1", "by": "local"}),
        (ev.Resumed("c1"), {"type": "resumed", "call_id": "c1", "by": "remote"}),
        (
            ev.DtmfReceived("c1", "5", 100),
            {"type": "dtmf", "call_id": "c1", "digit": "5", "duration_ms": 100},
        ),
        (ev.IceCandidate("c1", init), {"type": "ice", "call_id": "c1", "candidate": CANDIDATE}),
        (ev.IceCandidate("c1", None), {"type": "ice", "call_id": "c1", "candidate": None}),
        (
            ev.Ended("c1", "busy", "Busy Here", 486),
            {"type": "ended", "call_id": "c1", "reason": "busy", "message": "Busy Here", "sip_status": 486},
        ),
        (
            ev.ErrorMessage("forbidden", "no", "to", 3, "c1"),
            {"type": "error", "id": 3, "code": "forbidden", "message": "no", "field": "to", "call_id": "c1"},
        ),
        (
            ev.SipRegistration("sip:1001@pbx", "registered", "200 OK"),
            {"type": "sip_registration", "aor": "sip:1001@pbx", "state": "registered", "reason": "200 OK"},
        ),
        (ev.PbxState("unreachable"), {"type": "pbx", "state": "unreachable"}),
        (ev.CallMessage("c1", "hi"), {"type": "message", "call_id": "c1", "body": "hi"}),
        (ev.MessageResult("c1", 405), {"type": "message_result", "call_id": "c1", "status": 405}),
        (
            ev.PresenceChanged("bob", "Bob", "1002", True),
            {"type": "presence", "user": "bob", "display_name": "Bob", "number": "1002", "online": True},
        ),
        (
            ev.Transfer("c1", "progress", 180, "SIP 180 Ringing"),
            {
                "type": "transfer",
                "call_id": "c1",
                "state": "progress",
                "sip_status": 180,
                "message": "SIP 180 Ringing",
            },
        ),
        (
            ev.TransferRequested("c1", "sip:1003@pbx"),
            {"type": "transfer_requested", "call_id": "c1", "to": "sip:1003@pbx"},
        ),
        (
            ev.Calls((ev.CallSummary("c1", "outbound", "holding", "sip:1002@pbx", True, False, 12.34),)),
            {
                "type": "calls",
                "calls": [
                    {
                        "call_id": "c1",
                        "direction": "outbound",
                        "state": "holding",
                        "remote": "sip:1002@pbx",
                        "held_local": True,
                        "held_remote": False,
                        "connected_for": 12.3,
                        "end_to_end": False,
                    }
                ],
            },
        ),
        (
            ev.Reattached("c1", "v=0", False, True),
            {"type": "reattached", "call_id": "c1", "sdp": "v=0", "held_local": False, "held_remote": True},
        ),
        (  # the answer to a reattach without an offer (the media kept end to end)
            ev.Reattached("c1", None, True, False),
            {"type": "reattached", "call_id": "c1", "held_local": True, "held_remote": False},
        ),
        (
            ev.CallQuality("c1", {"sip": {"mos": 2.1, "loss": 0.2, "poor": True}, "web": {"poor": False}}),
            {
                "type": "quality",
                "call_id": "c1",
                "poor": ["sip"],
                "legs": {"sip": {"mos": 2.1, "loss": 0.2, "poor": True}, "web": {"poor": False}},
            },
        ),
        (
            ev.ContactState("1002", "ringing", "**1002"),
            {"type": "contact_state", "number": "1002", "state": "ringing", "pickup": "**1002"},
        ),
        (
            ev.Voicemail("1001", True, 2, 8),
            {
                "type": "voicemail",
                "mailbox": "1001",
                "waiting": True,
                "new": 2,
                "old": 8,
                "urgent_new": 0,
                "urgent_old": 0,
            },
        ),
        (
            ev.RecordingChanged("c1", "recording", "on_demand", ("r/c1-1.wav",)),
            {
                "type": "recording",
                "call_id": "c1",
                "state": "recording",
                "mode": "on_demand",
                "files": ["r/c1-1.wav"],
            },
        ),
        (
            conference.Merged("conf-1", ("c1", "c2")),
            {"type": "merged", "conference_id": "conf-1", "call_ids": ["c1", "c2"]},
        ),
        (
            conference.Split("conf-1", "c2", ("c1",), "split", True),
            {
                "type": "split",
                "conference_id": "conf-1",
                "call_id": "c2",
                "call_ids": ["c1"],
                "reason": "split",
                "over": True,
            },
        ),
        (ev.Ack(1, "call", "c1"), {"type": "ack", "id": 1, "request": "call", "call_id": "c1"}),
        (ev.Pong(None), {"type": "pong", "id": None}),
    ]
    for message, expected in cases:
        assert json.loads(ev.encode(message)) == expected
    pushed = {json.loads(ev.encode(m))["type"] for m, _ in cases if not isinstance(m, (ev.Ack, ev.Pong))}
    assert pushed == set(ev.EVENT_TYPES)


def test_registered_hides_token_in_repr() -> None:
    reply = ev.Registered(
        1, "s", "alice", "Alice", "sip:1001@pbx", (ev.IceServerInfo(("turn:t",), "u", "pw"),), "tok.en", 60
    )
    assert "tok.en" not in repr(reply) and "pw" not in repr(reply)
    assert reply.to_json()["ice_servers"] == [{"urls": ["turn:t"], "username": "u", "credential": "pw"}]


def test_event_with_undecodable_sip_text_is_still_sent() -> None:
    """SIP headers decode with surrogateescape: a display name with bytes 0xff must not lose the call."""
    text = ev.encode(ev.Incoming("c1", "sip:\udcff@pbx", "\udcffEvil"))
    text.encode("utf-8")  # what aiohttp's send_str does: must not raise
    assert json.loads(text)["display_name"] == "\udcffEvil"
    assert ev.encode(ev.Ringing("c1")) == '{"type":"ringing","call_id":"c1"}'


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ('{"type":"login","user":"alice","secret":"\\ud800"}', "secret"),
        ('{"type":"call","to":"2000\\udfff","sdp":"v=0"}', "to"),
        ('{"type":"call","to":"2000","sdp":"v=0\\r\\ns=\\ud800"}', "sdp"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(message: str, field: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(message)
    assert info.value.field == field
