"""The JSON-RPC 2.0 framing (gateway/signaling/jsonrpc/framing.py) and the methods' params (jsonrpc_params.py),
without a network: every §5.1 error for bad input, batches (§6), and hypothesis: any text decodes
without an exception, and any params raise only `SignalingError`."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.signaling.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceError,
    SignalingError,
    Unauthorized,
)
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.params import (
    Announce,
    AnswerParams,
    CandidateParams,
    ControlParams,
    DisconnectParams,
    OfferParams,
    params_of,
)

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def test_request_notification_and_response() -> None:
    frame = rpc.decode('{"jsonrpc": "2.0", "method": "offer", "params": {"sdp": "v=0"}, "id": 1}')
    assert frame == rpc.Frame((rpc.Call("offer", {"sdp": "v=0"}, 1),))
    frame = rpc.decode('{"jsonrpc": "2.0", "method": "disconnect"}')
    assert frame.calls == (rpc.Call("disconnect", {}, None, notification=True),)
    frame = rpc.decode('{"jsonrpc": "2.0", "method": "ping", "id": null}')  # id null: a request still
    assert frame.calls == (rpc.Call("ping", {}, None),)
    assert rpc.decode('{"jsonrpc": "2.0", "result": 1, "id": 5}') == rpc.Frame()  # a response: ignored


@pytest.mark.parametrize(
    ("text", "code", "rpc_id"),
    [
        ("{", rpc.PARSE_ERROR, None),
        (b"\xff\xfe", rpc.PARSE_ERROR, None),
        ("[]", rpc.INVALID_REQUEST, None),
        ("5", rpc.INVALID_REQUEST, None),
        ('{"method": "offer", "id": 1}', rpc.INVALID_REQUEST, 1),  # no jsonrpc
        ('{"jsonrpc": "1.0", "method": "offer", "id": 1}', rpc.INVALID_REQUEST, 1),
        ('{"jsonrpc": "2.0", "method": 5, "id": "a"}', rpc.INVALID_REQUEST, "a"),
        ('{"jsonrpc": "2.0", "method": "", "id": 2}', rpc.INVALID_REQUEST, 2),
        ('{"jsonrpc": "2.0", "method": "offer", "params": "x", "id": 3}', rpc.INVALID_REQUEST, 3),
        ('{"jsonrpc": "2.0", "method": "offer", "id": 1.5}', rpc.INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "offer", "id": true}', rpc.INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "offer", "id": {}}', rpc.INVALID_REQUEST, None),
    ],
)
def test_bad_frames_are_answered(text: str | bytes, code: int, rpc_id: rpc.RpcId) -> None:
    frame = rpc.decode(text)
    assert frame.calls == () and len(frame.errors) == 1
    error = frame.errors[0]
    assert (error.code, error.id) == (code, rpc_id)
    body = error.to_json()
    assert body["jsonrpc"] == "2.0" and body["id"] == rpc_id
    assert isinstance(body["error"], dict) and body["error"]["code"] == code


def test_batch_mixes_calls_errors_and_notifications() -> None:
    text = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "ping", "id": 1},
            {"jsonrpc": "2.0", "method": "disconnect"},
            1,
            {"jsonrpc": "2.0", "result": 0, "id": 9},
        ]
    )
    frame = rpc.decode(text)
    assert frame.batch and [c.method for c in frame.calls] == ["ping", "disconnect"]
    assert [e.code for e in frame.errors] == [rpc.INVALID_REQUEST]
    too_many = json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(rpc.MAX_BATCH + 1)])
    assert [e.code for e in rpc.decode(too_many).errors] == [rpc.INVALID_REQUEST]


def test_replies_of_a_batch_and_of_notifications() -> None:
    replies = rpc.Replies(batch=True)
    assert replies.encoded() is None  # only notifications: nothing at all is sent (§6)
    replies.add(rpc.result(1, {"pong": True}))
    replies.add(rpc.RpcError(rpc.METHOD_NOT_FOUND, "Method not found", 2).to_json())
    assert json.loads(replies.encoded() or "") == [
        {"jsonrpc": "2.0", "result": {"pong": True}, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2},
    ]
    single = rpc.Replies(batch=False)
    single.add(rpc.result("x", None))
    assert json.loads(single.encoded() or "") == {"jsonrpc": "2.0", "result": None, "id": "x"}


def test_signaling_errors_map_to_codes() -> None:
    assert rpc.error_from(BadRequest("sdp is required", field="sdp"), 1).to_json() == {
        "jsonrpc": "2.0",
        "error": {
            "code": rpc.INVALID_PARAMS,
            "message": "sdp is required",
            "data": {"reason": "bad_request", "http_status": 400, "field": "sdp"},
        },
        "id": 1,
    }
    assert rpc.error_from(Unauthorized("no"), 1).code == rpc.UNAUTHORIZED
    assert rpc.error_from(NotFound("no"), 1).code == rpc.NOT_FOUND
    assert rpc.error_from(Conflict("no"), 1).code == rpc.CONFLICT
    refused = rpc.error_from(ServiceError("Busy (SIP 486)", code="busy", http_status=502), 1)
    assert (refused.code, refused.data) == (rpc.CALL_FAILED, {"reason": "busy", "http_status": 502})
    bad_destination = rpc.error_from(BadRequest("no", code="bad_destination"), 1)
    assert bad_destination.code == rpc.CALL_FAILED  # the call layer's refusal, not a malformed param


def test_params_of_each_method() -> None:
    assert params_of("offer", {"sdp": OFFER, "type": "offer"}) == OfferParams(OFFER, None)  # the document's
    assert params_of("offer", {"sdp": {"type": "offer", "sdp": OFFER}, "to": " 2000 "}) == OfferParams(
        OFFER, "2000"
    )
    assert params_of("offer", {"sdp": OFFER, "metadata": {"dial": "sip:2000@pbx"}}).to == "sip:2000@pbx"  # type: ignore[union-attr]
    assert params_of("answer", {"call_id": "c1", "sdp": OFFER, "type": "answer"}) == AnswerParams("c1", OFFER)
    assert params_of("offer", {"sdp": OFFER, "target_peer_id": "bob-1"}) == OfferParams(OFFER, None, "bob-1")
    announced = params_of("announce", {"peer_id": "p-1", "capabilities": {"audio": True},
                                       "credentials": {"api_key": "k" * 20}})  # fmt: skip
    assert isinstance(announced, Announce) and announced.credentials is not None
    candidate = params_of("ice_candidate", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
    assert isinstance(candidate, CandidateParams) and candidate.candidate is not None
    assert params_of("ice_candidate", {"call_id": "c1", "candidate": None}) == CandidateParams("c1", None)
    assert params_of("disconnect", {}) == DisconnectParams()
    assert params_of("ping", {}) is None
    transfer_of = params_of("offer", {"sdp": OFFER, "to": "2001", "transfer_of": "c1"})
    assert transfer_of == OfferParams(OFFER, "2001", None, "c1")  # the SIP party's REFER carried out
    restart = params_of("offer", {"call_id": "c1", "sdp": {"type": "offer", "sdp": OFFER}})
    assert restart == OfferParams(OFFER, call_id="c1")  # an ICE restart of the peer's call c1 (issue 34)


def test_params_of_the_call_controls() -> None:
    """hold, resume, dtmf, transfer and message (issue 33): call_id optional (the peer's only call)."""
    assert params_of("hold", {}) == ControlParams("hold")
    assert params_of("resume", {"call_id": "c1"}) == ControlParams("resume", "c1")
    assert params_of("dtmf", {"digits": "12*#ab"}) == ControlParams("dtmf", digits="12*#AB")
    assert params_of("dtmf", {"call_id": "c1", "digits": "5", "duration_ms": 40}).duration_ms == 40  # type: ignore[union-attr]
    assert params_of("transfer", {"to": " 2001 "}) == ControlParams("transfer", to="2001")
    assert params_of("transfer", {"call_id": "c1", "replaces": "c2"}) == ControlParams(
        "transfer", "c1", replaces="c2"
    )
    assert params_of("message", {"body": "hi ☺"}) == ControlParams("message", body="hi ☺")
    assert {"hold", "resume", "dtmf", "transfer", "message"} <= rpc.METHODS


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("offer", [], "params"),
        ("offer", {}, "sdp"),
        ("offer", {"sdp": "junk"}, "sdp"),
        ("offer", {"sdp": OFFER, "type": "answer"}, "type"),
        ("offer", {"sdp": {"type": "answer", "sdp": OFFER}}, "sdp.type"),
        ("offer", {"sdp": OFFER, "to": "20 00"}, "to"),
        ("offer", {"sdp": OFFER, "to": 5}, "to"),
        ("offer", {"sdp": OFFER, "metadata": []}, "metadata"),
        ("offer", {"sdp": OFFER, "target_peer_id": "a b"}, "target_peer_id"),
        ("offer", {"sdp": OFFER, "to": "2000", "target_peer_id": "bob-1"}, "target_peer_id"),
        ("answer", {"sdp": OFFER}, "call_id"),
        ("announce", {}, "peer_id"),
        ("announce", {"peer_id": "a b"}, "peer_id"),
        ("announce", {"peer_id": "p", "credentials": {}}, "credentials"),
        ("announce", {"peer_id": "p", "credentials": "k"}, "credentials"),
        ("ice_candidate", {}, "candidate"),
        ("ice_candidate", {"candidate": {"candidate": "junk"}}, "candidate"),
        ("disconnect", {"reason": 5}, "reason"),
        ("offer", {"sdp": OFFER, "to": "2001", "transfer_of": "a b"}, "transfer_of"),
        ("offer", {"sdp": OFFER, "target_peer_id": "bob-1", "transfer_of": "c1"}, "transfer_of"),
        ("offer", {"sdp": OFFER, "call_id": "a b"}, "call_id"),
        ("offer", {"sdp": OFFER, "call_id": "c1", "to": "2000"}, "call_id"),  # a restart places no call
        # the call controls: the HTTP API's rules (digits, duration_ms, to, body), the field named
        ("hold", {"call_id": 5}, "call_id"),
        ("resume", {"call_id": ""}, "call_id"),
        ("dtmf", {}, "digits"),
        ("dtmf", {"digits": "5x"}, "digits"),
        ("dtmf", {"digits": "1" * 33}, "digits"),
        ("dtmf", {"digits": "5", "duration_ms": 39}, "duration_ms"),
        ("dtmf", {"digits": "5", "duration_ms": 2001}, "duration_ms"),
        ("dtmf", {"digits": "5", "duration_ms": True}, "duration_ms"),
        ("dtmf", {"digits": "5", "duration_ms": "100"}, "duration_ms"),
        ("transfer", {}, "to"),
        ("transfer", {"to": ""}, "to"),
        ("transfer", {"to": "20\x0001"}, "to"),
        ("transfer", {"to": "2001", "replaces": "c2"}, "to"),
        ("transfer", {"replaces": "c 2"}, "replaces"),
        ("transfer", {"replaces": 7}, "replaces"),
        ("message", {}, "body"),
        ("message", {"body": ""}, "body"),
        ("message", {"body": "é" * 4097}, "body"),  # 8194 bytes in UTF-8: over the 8192-byte limit
        ("message", {"body": ["hi"]}, "body"),
    ],
)
def test_bad_params_name_the_field(method: str, params: object, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        params_of(method, params)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert rpc.error_from(caught.value, 7).code == rpc.INVALID_PARAMS


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_decodes_without_exception(text: str | bytes) -> None:
    frame = rpc.decode(text)
    assert all(isinstance(c, rpc.Call) for c in frame.calls)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(st.sampled_from(sorted(rpc.METHODS)), st.dictionaries(st.sampled_from(["sdp", "to", "type", "call_id", "candidate", "peer_id", "credentials", "metadata", "reason", "digits", "duration_ms", "replaces", "body", "transfer_of"]), _json, max_size=5))  # fmt: skip
def test_any_params_raise_only_signaling_errors(method: str, params: dict[str, object]) -> None:
    with contextlib.suppress(SignalingError):
        params_of(method, params)  # type: ignore[arg-type]
