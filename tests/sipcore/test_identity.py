"""Caller identity from INVITE headers: P-Asserted-Identity, Remote-Party-ID, Diversion, History-Info."""

from __future__ import annotations

from sipcore.identity import Diversion, Party, asserted_identity, diversions
from sipcore.syntax.message import Request
from sipcore.syntax.parser import parse_message


def invite(*headers: str) -> Request:
    extra = "".join(f"{h}\r\n" for h in headers)
    text = (
        "INVITE sip:1001@gw SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        'To: <sip:1001@gw>\r\nFrom: "Front Desk" <sip:100@pbx>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n'
        f"{extra}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_p_asserted_identity_prefers_the_sip_uri() -> None:
    request = invite(
        'P-Asserted-Identity: <tel:+15551230100>, "Carol Jones" <sip:+15551230100@pbx;user=phone>'
    )
    assert asserted_identity(request.headers) == Party("sip:+15551230100@pbx;user=phone", "Carol Jones")
    request = invite("P-Asserted-Identity: <tel:+15551230100>")
    assert asserted_identity(request.headers) == Party("tel:+15551230100")


def test_remote_party_id_only_when_calling_and_no_pai() -> None:
    request = invite(
        'Remote-Party-ID: "Dan" <sip:200@pbx>;party=called',
        'Remote-Party-ID: "Eve" <sip:300@pbx>;party=calling;privacy=off',
    )
    assert asserted_identity(request.headers) == Party("sip:300@pbx", "Eve")
    both = invite("P-Asserted-Identity: <sip:400@pbx>", "Remote-Party-ID: <sip:300@pbx>;party=calling")
    assert asserted_identity(both.headers) == Party("sip:400@pbx")
    assert asserted_identity(invite().headers) is None


def test_diversion_oldest_first_with_reasons() -> None:
    request = invite(
        "Diversion: <sip:1002@pbx>;reason=no-answer;counter=1",  # the latest redirection is on top
        "Diversion: <sip:5551000@pbx>;reason=unconditional;counter=1",
    )
    assert diversions(request.headers) == (
        Diversion("sip:5551000@pbx", "unconditional"),
        Diversion("sip:1002@pbx", "no-answer"),
    )


def test_history_info_entries_in_index_order_with_causes_and_without_the_current_target() -> None:
    request = invite(
        "History-Info: <sip:1001@gw>;index=1.1.1",
        "History-Info: <sip:bob@pbx?Reason=SIP%3Bcause%3D302>;index=1.1, <sip:alice@pbx?Reason=SIP%3Bcause%3D486>;index=1",
    )
    assert diversions(request.headers) == (Diversion("sip:alice@pbx", "486"), Diversion("sip:bob@pbx", "302"))


def test_malformed_values_are_skipped_not_fatal() -> None:
    request = invite(
        "P-Asserted-Identity: <<<nonsense",
        'Diversion: "unclosed <sip:x@y>',
        "History-Info: <sip:a@b>;index=1",
    )
    assert asserted_identity(request.headers) is None
    assert diversions(request.headers) == ()
