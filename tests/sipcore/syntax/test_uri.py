"""URIs: SIP/SIPS/tel/absolute, escapes, parameters vs headers (RFC 3261 §19.1)."""

from __future__ import annotations

import pytest

from sipcore import BadRequest, UnsupportedURIScheme
from sipcore.syntax.uri import AbsoluteURI, SipURI, TelURI, parse_request_uri, parse_uri, percent_decode


def test_full_sip_uri() -> None:
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi&priority=urgent")
    assert uri == SipURI(
        "[2001:db8::1]",
        "alice",
        "secret",
        5061,
        (("transport", "tls"), ("lr", None)),
        (("subject", "hi"), ("priority", "urgent")),
        "sips",
    )
    assert isinstance(uri, SipURI)
    assert uri.param("TRANSPORT") == "tls" and uri.param("lr") == "" and uri.param("maddr") is None
    assert uri.hostport == "[2001:db8::1]:5061"
    assert parse_uri(str(uri)) == uri


def test_user_is_unescaped_and_escaped_again() -> None:
    uri = parse_uri("sip:%75se%72%20name@example.com")
    assert isinstance(uri, SipURI) and uri.user == "user name"
    assert str(uri) == "sip:user%20name@example.com"
    assert percent_decode("%e2%82%ac") == "€"


def test_scheme_is_case_insensitive() -> None:
    assert parse_uri("SIP:bob@example.com") == SipURI("example.com", "bob")


def test_tel_and_absolute() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert tel == TelURI("+1-201-555-0123", (("phone-context", "example.com"),))
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    assert parse_uri("http://www.example.com/alice/photo.jpg") == AbsoluteURI(
        "http", "//www.example.com/alice/photo.jpg"
    )


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:host:99999",
        "sip:host:abc",
        "sip:us er@host",
        "sip:user@ho st",
        "sip:user@host;=x",
        "sip:%zz@host",
        "sip:user@host?nohvalue",
        "<sip:host>",
        "nocolon",
        "1sip:host",
        "sip:user@[::1",
        "tel:",
        "http:",
        "sip:host;p=a b",
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_uri(text)


def test_request_uri_schemes() -> None:
    assert isinstance(parse_request_uri("tel:+15551234"), TelURI)
    with pytest.raises(UnsupportedURIScheme) as info:
        parse_request_uri("mailto:bob@example.com")
    assert info.value.status == 416
    with pytest.raises(BadRequest, match="headers not allowed"):
        parse_request_uri("sip:bob@example.com?Subject=x")


def test_value_objects_validate() -> None:
    with pytest.raises(ValueError, match="'ftp'"):
        SipURI("example.com", scheme="ftp")
    with pytest.raises(ValueError, match="'bad host'"):
        SipURI("bad host")
    with pytest.raises(ValueError, match="70000"):
        SipURI("example.com", port=70000)
    with pytest.raises(ValueError, match="password"):
        SipURI("example.com", password="x")
    with pytest.raises(ValueError, match="URI parameter"):
        SipURI("example.com", params=(("a b", None),))
    with pytest.raises(ValueError):
        TelURI("")
    with pytest.raises(ValueError):
        AbsoluteURI("1x", "y")


def test_with_params() -> None:
    uri = SipURI("example.com", "bob", params=(("transport", "udp"),))
    assert str(uri.with_params(transport="tcp", lr=None)) == "sip:bob@example.com;transport=tcp;lr"
