"""Out-of-dialog request builders (RFC 3261 §8.1.1, §10.2, §11.1) and route sets (§12.2.1.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import NameAddr, Request, SipURI, parse_message, parse_name_addr, parse_uri
from sipcore.dialogs.requests import (
    Endpoint,
    apply_route_set,
    build_invite,
    build_options,
    build_register,
    build_request,
)
from sipcore.syntax.headers import BRANCH_MAGIC_COOKIE

ENDPOINT = Endpoint("203.0.113.5", 5060, supported=("replaces",))
ALICE = parse_name_addr('"Alice" <sip:alice@gw.example.org>')
BOB = parse_name_addr("<sip:bob@pbx.example.org>")


def reparse(request: Request) -> Request:
    """What the peer reads: the request written and parsed again."""
    message = parse_message(request.serialize())
    assert isinstance(message, Request)
    return message


def test_endpoint_contact_and_via() -> None:
    assert str(ENDPOINT.contact_uri()) == "sip:203.0.113.5:5060"
    assert str(ENDPOINT.contact("1001")) == "<sip:1001@203.0.113.5:5060>"
    tcp = Endpoint("gw.example.org", 5070, transport="TCP", contact_user="gw")
    assert str(tcp.contact_uri()) == "sip:gw@gw.example.org:5070;transport=tcp"
    assert (
        str(Endpoint("gw.example.org", transport="TLS").contact_uri()) == "sip:gw.example.org;transport=tls"
    )
    assert Endpoint("gw.example.org", transport="TLS").secure and not tcp.secure
    via = tcp.via()
    assert via.transport == "TCP" and via.sent_by == ("gw.example.org", 5070)
    assert via.branch is not None and via.branch.startswith(BRANCH_MAGIC_COOKIE)
    assert via.param("rport") == ""  # RFC 3581 §3
    assert tcp.via().branch != via.branch
    assert tcp.via("z9hG4bKfixed").branch == "z9hG4bKfixed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transport": "udp"},
        {"transport": "QUIC"},
        {"allow": ("INVITE", "BAD METHOD")},
        {"supported": ("a,b",)},
        {"user_agent": "x\r\ny"},
    ],
)
def test_endpoint_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"invalid|line break"):
        Endpoint("gw.example.org", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid endpoint address 'bad host'"):
        Endpoint("bad host")


def test_invite_has_every_mandatory_header() -> None:
    sdp = b"v=0\r\n"
    invite = reparse(build_invite(ENDPOINT, from_=ALICE, to=BOB, body=sdp, call_id="c1@gw"))
    assert invite.method == "INVITE" and str(invite.uri) == "sip:bob@pbx.example.org"  # §8.1.1.1
    assert invite.headers.get("Max-Forwards") == "70"  # §8.1.1.6
    assert invite.from_ is not None and invite.from_.tag and invite.from_.display_name == "Alice"
    assert invite.to is not None and invite.to.tag is None  # §8.1.1.2
    assert invite.call_id == "c1@gw"
    assert str(invite.cseq) == "1 INVITE"
    assert invite.top_via is not None and invite.top_via.branch is not None
    assert [str(c.uri) for c in invite.contacts] == ["sip:203.0.113.5:5060"]  # §8.1.1.8
    assert invite.headers.get("User-Agent") == "sip-webrtc-gateway"
    assert invite.headers.get_all("Allow") == ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
    assert invite.headers.get("Supported") == "replaces"
    assert invite.headers.get("Content-Type") == "application/sdp" and invite.body == sdp
    assert "Route" not in invite.headers
    # A fresh Call-ID (with our host) and From tag each time.
    first, second = (build_invite(ENDPOINT, from_=ALICE, to=BOB) for _ in range(2))
    assert first.call_id != second.call_id and str(first.call_id).endswith("@203.0.113.5")
    assert first.from_ is not None and second.from_ is not None and first.from_.tag != second.from_.tag
    assert "Content-Type" not in first.headers  # no body, no type


def test_invite_request_uri_route_and_validation() -> None:
    proxy = parse_name_addr("<sip:proxy.example.org;lr>")
    invite = build_invite(
        ENDPOINT, from_=ALICE, to=BOB, request_uri=parse_uri("sip:2000@pbx"), route_set=(proxy,)
    )
    assert str(invite.uri) == "sip:2000@pbx"
    assert invite.headers.get_all("Route") == ("<sip:proxy.example.org;lr>",)
    tagged = ALICE.with_param("tag", "keep")
    assert build_invite(ENDPOINT, from_=tagged, to=BOB).from_ == tagged
    with pytest.raises(ValueError, match="no To tag"):
        build_invite(ENDPOINT, from_=ALICE, to=BOB.with_param("tag", "x"))


def test_options() -> None:
    options = reparse(build_options(ENDPOINT, from_=ALICE, to=BOB))
    assert options.method == "OPTIONS" and str(options.cseq) == "1 OPTIONS"
    assert options.headers.get("Accept") == "application/sdp"  # §11.1
    assert options.headers.get("Allow") is not None and options.from_ is not None and options.from_.tag


def test_register() -> None:
    aor = NameAddr(parse_uri("sip:1001@pbx.example.org"), None, (("tag", "regtag"),))
    register = reparse(
        build_register(
            ENDPOINT,
            aor=aor,
            registrar=SipURI("pbx.example.org"),
            call_id="reg-1",
            cseq=7,
            expires=600,
            contact=ENDPOINT.contact("1001"),
        )
    )
    assert str(register.uri) == "sip:pbx.example.org"  # §10.2: domain, no user
    assert (
        register.to is not None
        and str(register.to.uri) == "sip:1001@pbx.example.org"
        and register.to.tag is None
    )
    assert (
        register.from_ is not None
        and register.from_.tag == "regtag"
        and register.from_.uri == register.to.uri
    )
    assert register.call_id == "reg-1" and str(register.cseq) == "7 REGISTER"
    assert [str(c) for c in register.contacts] == ["<sip:1001@203.0.113.5:5060>;expires=600"]
    assert register.headers.get("Expires") == "600"
    removal = build_register(ENDPOINT, aor=aor, registrar=SipURI("pbx"), call_id="r", cseq=8, expires=0)
    assert removal.headers.get("Expires") == "0" and removal.contacts[0].param("expires") == "0"
    with pytest.raises(ValueError, match="user part"):
        build_register(ENDPOINT, aor=aor, registrar=SipURI("pbx", user="x"), call_id="r", cseq=1, expires=1)
    with pytest.raises(ValueError, match="invalid expires"):
        build_register(ENDPOINT, aor=aor, registrar=SipURI("pbx"), call_id="r", cseq=1, expires=-1)


def test_route_sets() -> None:
    target = parse_uri("sip:bob@192.0.2.4")
    assert apply_route_set(target, ()) == (target, ())
    loose = (parse_name_addr("<sip:p1.example.com;lr>"), parse_name_addr("<sip:p2.example.com;lr>"))
    assert apply_route_set(target, loose) == (target, loose)
    # RFC 3261 §12.2.1.1 strict routing: Request-URI = first route (minus 'method' and headers),
    # Route = the rest, then the remote target.
    strict = (parse_name_addr("<sip:p1.example.com;method=INVITE;maddr=10.0.0.1?x=y>"), loose[1])
    uri, routes = apply_route_set(target, strict)
    assert str(uri) == "sip:p1.example.com;maddr=10.0.0.1"
    assert [str(r) for r in routes] == ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]
    request = build_request(
        "BYE", target, endpoint=ENDPOINT, from_=ALICE, to=BOB, call_id="c", cseq=2, route_set=strict
    )
    assert str(request.uri) == "sip:p1.example.com;maddr=10.0.0.1"
    assert request.headers.get_all("Route") == ("<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>")


def test_body_needs_a_content_type() -> None:
    with pytest.raises(ValueError, match="content type"):
        build_request("INFO", BOB.uri, endpoint=ENDPOINT, from_=ALICE, to=BOB, call_id="c", cseq=1, body=b"x")


NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20)
USERS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/%#@: ", min_size=1, max_size=20
)


@given(NAMES, USERS, st.binary(max_size=200), st.integers(1, 2**31))
def test_built_requests_round_trip(display: str, user: str, body: bytes, cseq: int) -> None:
    """parse(write(x)) == x for the requests we build, whatever the names in them."""
    from_ = NameAddr(SipURI("gw.example.org", user=user), display)
    to = NameAddr(SipURI("pbx.example.org", user=user))
    invite = build_invite(ENDPOINT, from_=from_, to=to, body=body, cseq=cseq)
    parsed = reparse(invite)
    assert parsed.from_ == invite.from_ and parsed.to == invite.to and parsed.uri == invite.uri
    assert parsed.cseq == invite.cseq and parsed.body == body


@pytest.mark.parametrize("host", ["::1", "[::1]", "2001:db8::5"])
def test_an_ipv6_endpoint_writes_ipv6_references_in_via_and_contact(host: str) -> None:
    endpoint = Endpoint(host, 5070)
    bracketed = host if host.startswith("[") else f"[{host}]"
    assert str(endpoint.via("z9hG4bKx")).startswith(f"SIP/2.0/UDP {bracketed}:5070;")
    assert str(endpoint.contact("gw")) == f"<sip:gw@{bracketed}:5070>"
