"""What a UAS checks before it acts on a request (RFC 3261 §8.2.1-§8.2.3): the method, the body it was
sent, and the bodies its answer may carry. Each check returns the response to send instead
(status and extra headers), or None when the request may go on.

- Method (§8.2.1): a method the UAS recognises but does not allow gets 405 with Allow; one it does
  not recognise at all gets 501 (§21.5.2).
- Body (§8.2.3): a Content-Type the UAS does not understand gets 415 with Accept (RFC 4475 §3.3.6),
  a Content-Encoding it does not apply gets 415 with Accept-Encoding: identity.
- Accept (§8.2.2 for Accept, §21.4.7): a request whose Accept excludes the type the answer would
  carry gets 406 (RFC 4475 §3.3.15).
"""

from __future__ import annotations

from collections.abc import Collection

from sipcore.errors import SIPError
from sipcore.syntax.headers import split_commas, warning_value
from sipcore.syntax.message import Request

__all__ = ["KNOWN_METHODS", "Refusal", "refuse_accept", "refuse_body", "refuse_method"]

Refusal = tuple[int, tuple[tuple[str, str], ...]]  # (status, extra headers)

# Methods of RFC 3261 and the extensions a SIP peer meets (RFC 3262 PRACK, 3265/6665 SUBSCRIBE/NOTIFY,
# 3311 UPDATE, 3428 MESSAGE, 3515 REFER, 3903 PUBLISH, 2976/6086 INFO): known, so 405 when not allowed.
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
        "UPDATE", "MESSAGE", "REFER", "PUBLISH", "INFO",
    }
)  # fmt: skip


def refuse_method(method: str, allowed: Collection[str]) -> Refusal | None:
    """405 with Allow for a known method not allowed here, 501 for an unknown one, else None."""
    if method in allowed:
        return None
    if method in KNOWN_METHODS:
        return 405, (("Allow", ", ".join(allowed)),)
    return 501, (("Allow", ", ".join(allowed)),)


def _media_type(value: str) -> str:
    """``Application/SDP; charset=x`` -> ``application/sdp`` (types compare case-insensitively, §7.3.1)."""
    return value.split(";", 1)[0].strip().lower()


def refuse_body(request: Request, understood: Collection[str]) -> Refusal | None:
    """415 when the request carries a body of a type (or an encoding) the UAS cannot use."""
    try:
        encodings = [
            part for value in request.headers.get_all("Content-Encoding") for part in split_commas(value)
        ]
    except SIPError:
        return 400, ()
    if any(part.strip().lower() not in ("", "identity") for part in encodings):
        return 415, (("Accept-Encoding", "identity"),)
    if not request.body:
        return None
    content_type = request.headers.get("Content-Type")
    # §8.2.3, §20.15: a body without a Content-Type is taken as what the method expects (SDP).
    if content_type is None or _media_type(content_type) in understood:
        return None
    return 415, (("Accept", ", ".join(understood)),)


def refuse_accept(request: Request, answer_type: str) -> Refusal | None:
    """406 when an Accept header is present and admits neither ``answer_type`` nor a wildcard for it.

    An empty Accept means no body is acceptable (§20.1) and is honoured only for requests whose answer
    must carry one; callers ask only then."""
    values = request.headers.get_all("Accept")
    if not values:
        return None
    major = answer_type.split("/", 1)[0]
    try:
        items = [item for value in values for item in split_commas(value)]
    except SIPError:
        return 400, ()
    if any(_media_type(item) in (answer_type, f"{major}/*", "*/*") for item in items):
        return None
    warning = f"the answer would be {answer_type}, which the request's Accept does not admit"
    return 406, (("Accept", answer_type), ("Warning", warning_value(399, warning)))  # RFC 3261 §21.4.7
