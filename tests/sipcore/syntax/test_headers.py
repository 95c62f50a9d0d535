"""Typed header values: Via, CSeq, name-addr, parameters, generators."""

from __future__ import annotations

import pytest

from sipcore import BadRequest, CSeq, NameAddr, SipURI, Via, new_branch, new_call_id, new_tag
from sipcore.syntax.headers import (
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_params,
    parse_via,
    split_commas,
)


def test_split_commas_respects_quotes_and_angles() -> None:
    value = '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>;q=0.5 , "x\\",y" <sip:e@f>'
    assert split_commas(value) == ['"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>;q=0.5", '"x\\",y" <sip:e@f>']
    with pytest.raises(BadRequest, match="unterminated"):
        split_commas('"open, <sip:a@b>')


def test_via() -> None:
    via = parse_via("SIP / 2.0 / udp  192.0.2.1 : 5060 ;branch=z9hG4bK776;rport;received=[2001:db8::9]")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5060)
    assert (
        via.branch == "z9hG4bK776" and via.param("rport") == "" and via.param("received") == "[2001:db8::9]"
    )
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=[2001:db8::9]"
    assert parse_via("SIP/2.0/TCP [2001:db8::1]:5070").sent_by == ("[2001:db8::1]", 5070)
    assert str(via.with_param("rport", "5062")) == (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport=5062;received=[2001:db8::9]"
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host;branch=a b",
        "SIP/2.0/UDP host:x",
    ],
)
def test_invalid_via(value: str) -> None:
    with pytest.raises(BadRequest, match="Via"):
        parse_via(value)


def test_cseq() -> None:
    assert parse_cseq(" 0009 \t INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(4294967295, "BYE")) == "4294967295 BYE"
    for bad in ["abc", "1", "INVITE 1", "4294967296 INVITE", "1 INV ITE", "-1 BYE", "١ INVITE"]:
        with pytest.raises(BadRequest, match=f"invalid CSeq {bad!r}"):
            parse_cseq(bad)
    with pytest.raises(ValueError, match="-1"):
        CSeq(-1, "BYE")


def test_max_forwards() -> None:
    assert parse_max_forwards("0068") == 68
    for bad in ["256", "x", "-1", ""]:
        with pytest.raises(BadRequest, match="Max-Forwards"):
            parse_max_forwards(bad)


def test_name_addr_forms() -> None:
    plain = parse_name_addr("sip:bob@example.com;tag=abc")
    assert plain == NameAddr(SipURI("example.com", "bob"), None, (("tag", "abc"),))
    assert plain.tag == "abc"
    # RFC 3261 §20.10: inside <> the parameters are the URI's, outside the header's.
    angle = parse_name_addr('"Bob \\"B\\"" <sip:bob@example.com;transport=tcp>;tag=x;expires=60')
    assert angle.display_name == 'Bob "B"'
    assert isinstance(angle.uri, SipURI) and angle.uri.param("transport") == "tcp"
    assert angle.params == (("tag", "x"), ("expires", "60"))
    assert parse_name_addr(str(angle)) == angle
    assert parse_name_addr("Bob  Smith <sip:bob@example.com>").display_name == "Bob Smith"
    assert parse_name_addr("Jürgen Müller <sip:j@example.com>").display_name == "Jürgen Müller"
    assert (
        parse_name_addr('<sip:bob@example.com>;+sip.instance="<urn:uuid:1>"').param("+sip.instance")
        == "<urn:uuid:1>"
    )
    assert str(plain.with_param("tag", "new")) == "<sip:bob@example.com>;tag=new"


@pytest.mark.parametrize(
    "value",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "<sip:a@b",
        "sip:a@b?x=y",
        "sip:a@b, sip:c@d",
        "<sip:a@b>;;",
        "<sip:a@b> junk",
        '"x" sip:a@b',
        "<sip:a@b>;tag=a b",
    ],
)
def test_invalid_name_addr(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_name_addr(value, "To")


def test_params() -> None:
    assert parse_params(' ; a = 1 ;b; c="x;y"', "X") == (("a", "1"), ("b", None), ("c", '"x;y"'))
    with pytest.raises(BadRequest):
        parse_params("a=1", "X")


def test_generators() -> None:
    branch = new_branch()
    assert branch.startswith("z9hG4bK") and len(branch) > 20 and branch != new_branch()
    assert len(new_tag()) >= 8 and new_tag() != new_tag()
    assert new_call_id("gw.example.com").endswith("@gw.example.com")
    assert "@" not in new_call_id()


def test_via_validation() -> None:
    with pytest.raises(ValueError, match="'U D P'"):
        Via("U D P", "host")
    with pytest.raises(ValueError, match="host"):
        Via("UDP", "a;b")
