"""The targets of a 3xx: Contacts by q-value (RFC 3261 §8.1.3.4), junk dropped."""

from __future__ import annotations

from sipcore.location.redirect import redirect_targets
from sipcore.syntax.message import Headers, Response


def response(*contacts: str) -> Response:
    return Response(302, "Moved Temporarily", Headers(tuple(("Contact", c) for c in contacts)))


def test_ordered_by_q_then_as_sent() -> None:
    found = redirect_targets(
        response(
            "<sip:a@example.com>;q=0.5, <sip:b@example.com>;q=0.9",
            "<sip:c@example.com>",  # no q: 1.0
            "<sip:d@example.com>;q=0.5",
        )
    )
    assert found == ("sip:c@example.com", "sip:b@example.com", "sip:a@example.com", "sip:d@example.com")


def test_headers_star_junk_and_duplicates_are_dropped() -> None:
    found = redirect_targets(
        response(
            "*",
            "<sip:a@example.com:5070;transport=tcp?Subject=hi>",
            "not a contact <<",
            "<tel:+123>",
            "<sip:a@example.com:5070;transport=tcp>",
            "<sip:b@example.com>;q=nonsense",
        )
    )
    assert found == ("sip:a@example.com:5070;transport=tcp", "sip:b@example.com")
