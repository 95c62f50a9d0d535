"""Which INFO bodies a call takes (RFC 6086): DTMF and sip.info_content_types; 415 with Accept for others,
469 with Recv-Info for an Info Package the gateway never offered (§4.2.2)."""

from __future__ import annotations

from gateway.sip import UASettings, UserAgent
from sipcore.syntax.message import Request
from sipcore.syntax.parser import parse_message


def info(content_type: str | None, body: str = "x", *extra: str) -> Request:
    headers = "".join(f"{h}\r\n" for h in extra)
    if content_type is not None:
        headers += f"Content-Type: {content_type}\r\n"
    text = (
        "INFO sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        "To: <sip:1001@gw>;tag=a\r\nFrom: <sip:2000@pbx>;tag=b\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n"
        f"{headers}Content-Length: {len(body)}\r\n\r\n{body}"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_info_bodies_taken_and_refused() -> None:
    ua = UserAgent(UASettings(info_content_types=("application/json",)))
    assert ua.info_refusal(info("application/dtmf-relay", "Signal=5\r\n")) is None
    assert ua.info_refusal(info("Application/JSON; charset=utf-8", "{}")) is None
    assert ua.info_refusal(info(None, "")) is None  # an empty INFO (legacy keep-alive)
    status, headers = ua.info_refusal(info("text/html", "<b>")) or (0, ())
    assert status == 415 and dict(headers)["Accept"].split(", ") == sorted(ua.info_types)
    assert ua.info_refusal(info("application/json", "{}", "Info-Package: foo")) == (469, (("Recv-Info", ""),))
    assert "application/json" not in UserAgent(UASettings()).info_types  # only when configured


def test_the_trickle_ice_package_is_taken_only_in_calls_that_offered_it() -> None:
    """RFC 8840 §4 / RFC 6086 §4.2.2: INFO with Info-Package trickle-ice in a pass-through call (its
    Recv-Info named the package) is taken; elsewhere, and for another package, 469 with our Recv-Info."""
    ua = UserAgent(UASettings())
    frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n"
    trickle = info("application/trickle-ice-sdpfrag", frag, "Info-Package: trickle-ice")
    offered = frozenset({"trickle-ice"})
    assert ua.info_refusal(trickle, offered) is None
    assert ua.info_refusal(trickle) == (469, (("Recv-Info", ""),))
    other = info("application/json", "{}", "Info-Package: foo")
    assert ua.info_refusal(other, offered) == (469, (("Recv-Info", "trickle-ice"),))
