"""Messages, headers container, responses, RFC 3581 received/rport, transaction keys."""

from __future__ import annotations

import pytest

from sipcore import (
    BadRequest,
    Headers,
    KeyKind,
    Request,
    Response,
    SipURI,
    add_received,
    client_transaction_key,
    make_response,
    parse_message,
    server_transaction_key,
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP proxy.example.com:5070;branch=z9hG4bKp1\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"X-Custom: keep me\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def invite() -> Request:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    return request


def test_headers_container() -> None:
    headers = Headers((("v", "a"), ("x-foo", "1"), ("Via", "b"), ("CALL-ID", "c")))
    assert list(headers) == [("Via", "a"), ("x-foo", "1"), ("Via", "b"), ("Call-ID", "c")]
    assert headers.get("X-FOO") == "1" and headers.get_all("v") == ("a", "b")
    assert "call-id" in headers and "Route" not in headers and len(headers) == 4
    assert headers.prepend("Via", "z").get_all("Via") == ("z", "a", "b")
    assert list(headers.replace("Via", "n")) == [("Via", "n"), ("x-foo", "1"), ("Call-ID", "c")]
    assert headers.replace("Route", "r").get("Route") == "r"
    assert headers.remove("via").get("Via") is None
    assert headers.add("Subject", "s").items[-1] == ("Subject", "s")
    for bad, match in [
        (("bad name", "x"), "'bad name'"),
        (("X", "a\r\nb"), "line break"),
        (("l", "5"), "Content-Length"),
        (("X", "\ud800"), "cannot be written"),
    ]:
        with pytest.raises(ValueError, match=match):
            Headers((bad,))


def test_serialize_is_canonical_and_keeps_unknown_headers() -> None:
    data = invite().serialize()
    assert data.startswith(b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33")
    assert b"\r\nX-Custom: keep me\r\nContent-Length: 0\r\n\r\n" in data
    assert parse_message(data) == invite()
    with_body = Request("MESSAGE", SipURI("example.com"), body=b"hi")
    assert with_body.serialize() == b"MESSAGE sip:example.com SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"


def test_value_objects_validate() -> None:
    with pytest.raises(ValueError, match="'IN VITE'"):
        Request("IN VITE", SipURI("example.com"))
    with pytest.raises(ValueError, match="700"):
        Response(700)
    with pytest.raises(ValueError, match="reason"):
        Response(200, "O\r\nK")


def test_make_response_copies_headers() -> None:
    request = invite()
    ringing = make_response(request, 180, to_tag="as83")
    assert ringing.reason == "Ringing"
    assert ringing.headers.get_all("Via") == request.headers.get_all("Via")
    assert ringing.headers.get("To") == "Bob <sip:bob@example.com>;tag=as83"
    for name in ("From", "Call-ID", "CSeq"):
        assert ringing.headers.get(name) == request.headers.get(name)
    assert ringing.headers.get("X-Custom") is None and ringing.headers.get("Timestamp") is None
    trying = make_response(request, 100)
    assert trying.to is not None and trying.to.tag is None  # RFC 3261 §8.2.6.2
    assert trying.headers.get("Timestamp") == "54"  # RFC 3261 §8.2.6.1
    fresh = make_response(request, 486)
    assert fresh.to is not None and fresh.to.tag and fresh.reason == "Busy Here"
    ok = make_response(request, 200, "Fine", to_tag="x", headers=(("Contact", "<sip:gw@h>"),), body=b"v=0")
    assert (ok.reason, ok.body, ok.headers.get("Contact")) == ("Fine", b"v=0", "<sip:gw@h>")
    tagged = make_response(
        parse_request(INVITE.replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=old")),
        200,
    )
    assert tagged.to is not None and tagged.to.tag == "old"


def test_add_received_rfc3581() -> None:
    request = invite()
    # rport present: received is always added and rport filled (RFC 3581 §4).
    updated = add_received(request, ("198.51.100.7", 40123))
    top = updated.top_via
    assert top is not None and top.param("received") == "198.51.100.7" and top.param("rport") == "40123"
    assert updated.headers.get_all("Via")[1] == request.headers.get_all("Via")[1]
    # Without rport: received only when the source differs from sent-by (RFC 3261 §18.2.1).
    plain = parse_message(INVITE.replace(b";rport", b""))
    assert isinstance(plain, Request)
    assert add_received(plain, ("pc33.example.com", 5060)) == plain
    moved = add_received(plain, ("192.0.2.4", 5060)).top_via
    assert moved is not None and moved.param("received") == "192.0.2.4" and moved.param("rport") is None
    assert add_received(Request("OPTIONS", SipURI("h")), ("192.0.2.4", 1)) == Request("OPTIONS", SipURI("h"))


def _variant(data: bytes, method: bytes) -> Request:
    request = parse_message(
        data.replace(b"INVITE sip", method + b" sip").replace(b"314159 INVITE", b"314159 " + method)
    )
    assert isinstance(request, Request)
    return request


def test_server_transaction_key_rfc3261() -> None:
    key = server_transaction_key(invite())
    assert key.kind is KeyKind.RFC3261 and key.branch == "z9hG4bK776asdhds"
    assert key.method == "INVITE" and key.sent_by == "pc33.example.com:"
    # RFC 3261 §17.2.3: the ACK for a non-2xx matches the INVITE transaction.
    assert server_transaction_key(_variant(INVITE, b"ACK")) == key
    cancel = _variant(INVITE, b"CANCEL")
    assert server_transaction_key(cancel) != key
    assert server_transaction_key(cancel).method == "CANCEL"
    assert server_transaction_key(cancel, cancelled=True) == key  # RFC 3261 §9.2
    other_sender = parse_message(INVITE.replace(b"pc33.example.com;branch", b"pc34.example.com;branch"))
    assert isinstance(other_sender, Request) and server_transaction_key(other_sender) != key


def test_server_transaction_key_rfc2543_fallback() -> None:
    old = INVITE.replace(b";branch=z9hG4bK776asdhds", b";branch=1234")
    key = server_transaction_key(parse_message(old))  # type: ignore[arg-type]
    assert key.kind is KeyKind.RFC2543
    ack = parse_message(
        old.replace(b"INVITE sip", b"ACK sip")
        .replace(b"314159 INVITE", b"314159 ACK")
        .replace(b"To: Bob <sip:bob@example.com>", b"To: Bob <sip:bob@example.com>;tag=x")
    )
    assert server_transaction_key(ack) == key  # type: ignore[arg-type]
    next_cseq = parse_message(old.replace(b"314159 INVITE", b"314160 INVITE"))
    assert server_transaction_key(next_cseq) != key  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        server_transaction_key(Request("OPTIONS", SipURI("h")))


def test_client_transaction_key() -> None:
    request = invite()
    response = make_response(request, 200, to_tag="t")
    assert client_transaction_key(response) == client_transaction_key(request)
    cancel_response = Response(200, "OK", response.headers.replace("CSeq", "314159 CANCEL"))
    assert client_transaction_key(cancel_response) != client_transaction_key(request)
    with pytest.raises(BadRequest):
        client_transaction_key(Response(200))
