"""RFC 4475 torture tests: valid messages parse, invalid ones raise the right error."""

from __future__ import annotations

import pathlib

import pytest

from sipcore import (
    BadExtension,
    BadRequest,
    Request,
    Response,
    SIPError,
    UnsupportedURIScheme,
    VersionNotSupported,
    error_response,
    parse_message,
)
from sipcore.syntax.message import KeyKind, server_transaction_key
from sipcore.syntax.uri import SipURI

TORTURE = pathlib.Path(__file__).parent / "torture"

# name -> (RFC 4475 section, expected error class or None for "parses", answerable)
EXPECTED: dict[str, tuple[str, type[SIPError] | None, bool]] = {
    # §3.1.1 valid messages
    "wsinv": ("3.1.1.1", None, True),
    "intmeth": ("3.1.1.2", None, True),
    "esc01": ("3.1.1.3", None, True),
    "escnull": ("3.1.1.4", None, True),
    "esc02": ("3.1.1.5", None, True),
    "lwsdisp": ("3.1.1.6", None, True),
    "longreq": ("3.1.1.7", None, True),
    "dblreq": ("3.1.1.8", None, True),
    "semiuri": ("3.1.1.9", None, True),
    "transports": ("3.1.1.10", None, True),
    "mpart01": ("3.1.1.11", None, True),
    "unreason": ("3.1.1.12", None, False),
    "noreason": ("3.1.1.13", None, False),
    # §3.1.2 invalid messages
    "badinv01": ("3.1.2.1", BadRequest, True),
    "clerr": ("3.1.2.2", BadRequest, True),
    "ncl": ("3.1.2.3", BadRequest, True),
    "scalar02": ("3.1.2.4", BadRequest, True),
    "scalarlg": ("3.1.2.5", BadRequest, False),  # a response: dropped
    "quotbal": ("3.1.2.6", BadRequest, True),
    "ltgtruri": ("3.1.2.7", BadRequest, True),
    "lwsruri": ("3.1.2.8", BadRequest, True),
    "lwsstart": ("3.1.2.9", BadRequest, True),  # strict: extra SP refused
    "trws": ("3.1.2.10", None, True),  # tolerant: trailing SP ignored (RFC allows)
    "escruri": ("3.1.2.11", BadRequest, True),
    "baddate": ("3.1.2.12", None, True),  # tolerant: Date is not interpreted (RFC allows)
    "regbadct": ("3.1.2.13", BadRequest, True),
    "badaspec": ("3.1.2.14", BadRequest, True),
    "baddn": ("3.1.2.15", BadRequest, True),
    "badvers": ("3.1.2.16", VersionNotSupported, True),
    "mismatch01": ("3.1.2.17", BadRequest, True),
    "mismatch02": ("3.1.2.18", BadRequest, True),
    "bigcode": ("3.1.2.19", BadRequest, False),  # a response: dropped
    # §3.2, §3.3: the parser's share of them
    "badbranch": ("3.2.1", None, True),
    "insuf": ("3.3.1", BadRequest, True),  # no From/To/Call-ID: still a 400 (Via and CSeq route it)
    "unkscm": ("3.3.2", UnsupportedURIScheme, True),
    "novelsc": ("3.3.3", UnsupportedURIScheme, True),
    "bext01": ("3.3.5", BadExtension, True),
    "multi01": ("3.3.8", BadRequest, True),
    "mcl01": ("3.3.9", BadRequest, True),
}


def load(name: str) -> bytes:
    return (TORTURE / f"{name}.dat").read_bytes()


def test_every_file_is_classified() -> None:
    assert sorted(p.stem for p in TORTURE.glob("*.dat")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture(name: str) -> None:
    section, error, answerable = EXPECTED[name]
    data = load(name)
    if error is None:
        message = parse_message(data)
        assert isinstance(message, Request | Response)
        # Written again, the message parses to the same thing.
        assert parse_message(message.serialize()) == message
        return
    with pytest.raises(error) as info:
        parse_message(data)
    exc = info.value
    assert type(exc) is error, section
    assert exc.answerable is answerable, section
    response = error_response(exc)
    if answerable:
        assert response is not None
        assert response.status == exc.status
        assert response.serialize().startswith(f"SIP/2.0 {exc.status} ".encode())
        assert response.headers.get("Via") is not None and response.headers.get("CSeq") is not None
        if name == "insuf":  # no Call-ID, From or To to copy (RFC 4475 §3.3.1): the 400 still goes
            assert response.headers.get("Call-ID") is None and response.headers.get("To") is None
            return
        assert response.headers.get("Call-ID") is not None
        to = response.headers.get("To") or ""
        # A To that cannot be parsed (quotbal, badaspec, baddn) is copied as it is.
        assert (";tag=" in to) is (name not in {"quotbal", "badaspec", "baddn"})
    else:
        assert response is None


def test_wsinv_fields() -> None:
    request = parse_message(load("wsinv"))
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert request.uri == SipURI("chair-dnrc.example.com", "vivekg", params=(("unknownparam", None),))
    assert request.cseq is not None and (request.cseq.seq, request.cseq.method) == (9, "INVITE")
    assert [v.host for v in request.vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert [v.branch for v in request.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert request.to is not None and request.to.tag == "1918181833n"
    assert request.from_ is not None and request.from_.display_name == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    assert request.headers.get("Subject") == ""
    assert request.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert request.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contact = request.contacts[0]
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue" and contact.param("secondparam") == ""
    assert contact.param("q") == "0.33"
    assert len(request.body) == 150


def test_intmeth_fields() -> None:
    request = parse_message(load("intmeth"))
    assert isinstance(request, Request)
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(request.uri, SipURI)
    assert request.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert request.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert request.to is not None and request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_ is not None and request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert request.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes() -> None:
    request = parse_message(load("esc01"))
    assert isinstance(request, Request) and isinstance(request.uri, SipURI)
    assert request.uri.user == "sips:user@example.com"
    assert request.to is not None and isinstance(request.to.uri, SipURI)
    assert request.to.uri.user == "user"
    contact_uri = request.contacts[0].uri
    assert isinstance(contact_uri, SipURI) and contact_uri.user == "caller"
    assert contact_uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    null = parse_message(load("escnull"))
    assert [c.uri.user for c in null.contacts if isinstance(c.uri, SipURI)] == ["\x00", "\x00\x00"]
    esc02 = parse_message(load("esc02"))
    assert isinstance(esc02, Request) and esc02.method == "RE%47IST%45R"
    assert esc02.to is not None and esc02.to.display_name == "%Z%45"
    assert len(esc02.contacts) == 3


def test_semiuri_user_has_parameters() -> None:
    request = parse_message(load("semiuri"))
    assert isinstance(request, Request) and isinstance(request.uri, SipURI)
    assert request.uri.user == "user;par=u@example.net" and request.uri.host == "example.com"
    assert request.headers.get_all("Accept")[-1] == "message/sipfrag"


def test_dblreq_keeps_only_the_first_message() -> None:
    request = parse_message(load("dblreq"))
    assert isinstance(request, Request) and request.method == "REGISTER" and request.body == b""


def test_longreq_and_transports() -> None:
    request = parse_message(load("longreq"))
    assert len(request.vias) == 34
    assert request.top_via is not None and request.top_via.host == "sip33.example.com"
    transports = parse_message(load("transports"))
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_responses() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response) and unreason.status == 200
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response) and (noreason.status, noreason.reason) == (100, "")


def test_bext01_lists_unsupported() -> None:
    with pytest.raises(BadExtension) as info:
        parse_message(load("bext01"))
    response = error_response(info.value)
    assert response is not None and response.headers.get("Unsupported") == "nothing"
    # With the option supported, and with Require checking off, it parses (Proxy-Require is
    # for proxies, RFC 3261 §8.2.2.3).
    assert isinstance(parse_message(load("bext01"), supported={"nothing"}), Request)
    assert isinstance(parse_message(load("bext01"), supported=None), Request)


def test_badbranch_falls_back_to_rfc2543_matching() -> None:
    request = parse_message(load("badbranch"))
    assert isinstance(request, Request)
    assert server_transaction_key(request).kind is KeyKind.RFC2543


def test_error_reason_names_the_header() -> None:
    with pytest.raises(BadRequest) as info:
        parse_message(load("scalar02"))
    assert "CSeq" in info.value.reason_phrase
    assert info.value.reason_phrase.startswith("Bad Request: ")
