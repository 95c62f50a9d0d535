"""Which INFO bodies a call takes (RFC 6086): DTMF and sip.info_content_types; 415 with Accept for others,
469 with Recv-Info for an Info Package the gateway never offered (§4.2.2)."""

from __future__ import annotations

from gateway.sip import UASettings, UserAgent
from sipcore.message import Request
from sipcore.parser import parse_message


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
