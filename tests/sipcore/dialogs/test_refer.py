"""REFER, its NOTIFYs and Replaces (sipcore/dialogs/refer.py): RFC 3515, RFC 3891."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import BadRequest
from sipcore.dialogs.refer import (
    ReferNotify,
    Replaces,
    notify_headers,
    parse_event,
    parse_refer_to,
    parse_sipfrag,
    refer_to,
    replaces_of,
    sipfrag,
)
from sipcore.errors import SIPError
from sipcore.syntax.headers import NameAddr
from sipcore.syntax.uri import SipURI, parse_uri


def test_replaces_parses_the_rfc_3891_example() -> None:
    replaces = Replaces.parse("425928@bobster.example.org;to-tag=7743;from-tag=6472")
    assert replaces == Replaces("425928@bobster.example.org", "7743", "6472")
    assert not replaces.early_only
    assert Replaces.parse("a@b ; from-tag=1 ;to-tag=2; early-only") == Replaces("a@b", "2", "1", True)


def test_replaces_round_trips_and_matches_from_the_uas_side() -> None:
    replaces = Replaces("c@h", "ours", "theirs", early_only=True)
    assert Replaces.parse(str(replaces)) == replaces
    assert replaces.matches("c@h", "ours", "theirs")
    assert not replaces.matches("c@h", "theirs", "ours")  # §3: to-tag is the UAS's own tag
    assert not replaces.matches("other", "ours", "theirs")


@pytest.mark.parametrize(
    "value",
    ["", "callid", "callid;to-tag=1", "callid;from-tag=1", ";to-tag=1;from-tag=2", "c;to-tag=;from-tag=2"],
)
def test_malformed_replaces_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest):
        Replaces.parse(value)


def test_two_replaces_headers_are_a_bad_request() -> None:
    assert Replaces.of_request(()) is None
    assert Replaces.of_request(("a;to-tag=1;from-tag=2",)) == Replaces("a", "1", "2")
    with pytest.raises(BadRequest):
        Replaces.of_request(("a;to-tag=1;from-tag=2", "b;to-tag=1;from-tag=2"))


def test_refer_to_escapes_replaces_as_rfc_3891_section_5() -> None:
    target = SipURI("example.org", "bob", scheme="sips")
    value = str(refer_to(target, Replaces("12345@192.168.118.3", "12345", "5FFE-3994")))
    assert value == (
        "<sips:bob@example.org?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>"
    )
    parsed = parse_refer_to(value)
    assert isinstance(parsed.uri, SipURI)
    assert replaces_of(parsed.uri) == Replaces("12345@192.168.118.3", "12345", "5FFE-3994")


def test_blind_refer_to_has_no_replaces() -> None:
    address = refer_to(SipURI("pbx.example", "1003"))
    assert str(address) == "<sip:1003@pbx.example>"
    assert isinstance(address.uri, SipURI) and replaces_of(address.uri) is None


@pytest.mark.parametrize("value", ["<tel:+123>", "<sip:a@b>, <sip:c@d>", "<sip:a@b", "garbage"])
def test_a_refer_to_that_is_not_one_sip_uri_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_refer_to(value)


def test_sipfrag_status_lines() -> None:
    assert sipfrag(200, "OK") == b"SIP/2.0 200 OK\r\n"
    assert sipfrag(100, "Trying\r\nX: y") == b"SIP/2.0 100 Trying X: y\r\n"  # no header injection
    assert parse_sipfrag(b"SIP/2.0 180 Ringing\r\n") == (180, "Ringing")
    assert parse_sipfrag(b"SIP/2.0 603 Declined\r\nContent-Length: 0\r\n\r\n") == (603, "Declined")
    assert parse_sipfrag(b"SIP/2.0 200") == (200, "")
    for bad in (b"", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 99 x", b"SIP/2.0 abc", b"x" * 9000):
        with pytest.raises(BadRequest):
            parse_sipfrag(bad)
    with pytest.raises(ValueError):
        sipfrag(99, "x")


def test_notify_headers_and_event() -> None:
    assert notify_headers(7, final=False) == (
        ("Event", "refer;id=7"),
        ("Subscription-State", "active;expires=60"),
    )
    assert notify_headers(7, final=True)[1] == ("Subscription-State", "terminated;reason=noresource")
    assert parse_event("refer;id=93809824") == ("refer", "93809824")
    assert parse_event("Refer") == ("refer", None)
    with pytest.raises(BadRequest):
        parse_event("")


def test_a_refer_notify_is_read_from_its_headers() -> None:
    notify = ReferNotify.parse(
        "refer;id=2", "terminated;reason=noresource", "message/sipfrag", b"SIP/2.0 200 OK"
    )
    assert notify == ReferNotify(200, "OK", terminated=True)
    assert notify.final and notify.succeeded
    trying = ReferNotify.parse(
        "refer", "active;expires=60", "message/sipfrag;version=2.0", b"SIP/2.0 100 Trying"
    )
    assert not trying.final and not trying.terminated
    failed = ReferNotify.parse("refer", "terminated", "message/sipfrag", b"SIP/2.0 486 Busy Here")
    assert failed.final and not failed.succeeded


@pytest.mark.parametrize(
    ("event", "state", "content_type", "body"),
    [
        ("presence", "active", "message/sipfrag", b"SIP/2.0 200 OK"),
        (None, "active", "message/sipfrag", b"SIP/2.0 200 OK"),
        ("refer", None, "message/sipfrag", b"SIP/2.0 200 OK"),
        ("refer", "bogus", "message/sipfrag", b"SIP/2.0 200 OK"),
        ("refer", "active", "text/plain", b"SIP/2.0 200 OK"),
        ("refer", "active", "message/sipfrag", b"hello"),
    ],
)
def test_a_notify_that_is_not_a_refer_notify_is_a_bad_request(
    event: str | None, state: str | None, content_type: str, body: bytes
) -> None:
    with pytest.raises(BadRequest):
        ReferNotify.parse(event, state, content_type, body)


@given(st.text(max_size=80))
def test_replaces_parse_raises_only_the_package_error(text: str) -> None:
    with contextlib.suppress(SIPError):
        Replaces.parse(text)


@given(st.text(max_size=120))
def test_refer_to_parse_raises_only_the_package_error(text: str) -> None:
    try:
        address = parse_refer_to(text)
        if isinstance(address.uri, SipURI):
            replaces_of(address.uri)
    except SIPError:
        pass


@given(st.binary(max_size=200))
def test_sipfrag_parse_raises_only_the_package_error(body: bytes) -> None:
    with contextlib.suppress(SIPError):
        parse_sipfrag(body)


_TAG = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=20)


@given(_TAG, _TAG, _TAG, st.booleans(), st.sampled_from(["", "@host.example", "@[::1]"]))
def test_replaces_in_refer_to_round_trips(
    call_id: str, to_tag: str, from_tag: str, early: bool, host: str
) -> None:
    replaces = Replaces(call_id + host, to_tag, from_tag, early)
    text = str(refer_to(SipURI("pbx.example", "1003"), replaces))
    uri = parse_refer_to(text).uri
    assert isinstance(uri, SipURI) and replaces_of(uri) == replaces
    assert isinstance(parse_uri(f"sip:1003@pbx.example?Replaces={replaces.escaped()}"), SipURI)
    assert NameAddr(uri).uri == uri
