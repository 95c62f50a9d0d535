"""The targets of a 3xx redirect (RFC 3261 §8.1.3.4, §21.3): its Contacts, best q-value first.

Pure. A Contact without ``q`` counts as q=1.0 (§20.10 leaves it to the UAC; 1.0 is what SIP stacks
use); equal q-values keep the order of the response. ``*`` and Contacts that do not parse are dropped,
as is each Contact's header part (``?...``): a redirect names where to send the INVITE, not what to
put in it. Duplicates are kept once.
"""

from __future__ import annotations

from sipcore.errors import SIPError
from sipcore.syntax.headers import parse_name_addr, split_commas
from sipcore.syntax.message import Response
from sipcore.syntax.uri import SipURI

__all__ = ["redirect_targets"]


def _q(value: str | None) -> float:
    try:
        q = float(value) if value is not None else 1.0
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0


def redirect_targets(response: Response) -> tuple[str, ...]:
    """The SIP URIs of a 3xx's Contacts, ordered by q-value (highest first)."""
    found: list[tuple[float, int, str]] = []
    index = 0
    for header in response.headers.get_all("Contact"):
        try:
            values = split_commas(header, "Contact")
        except SIPError:
            continue
        for value in values:
            if value.strip() == "*":
                continue
            try:
                contact = parse_name_addr(value, "Contact")
            except SIPError:
                continue
            uri = contact.uri
            if not isinstance(uri, SipURI):
                continue
            text = str(SipURI(uri.host, uri.user, port=uri.port, scheme=uri.scheme, params=uri.params))
            if all(text != item[2] for item in found):
                found.append((_q(contact.param("q")), index, text))
                index += 1
    return tuple(text for _, _, text in sorted(found, key=lambda item: (-item[0], item[1])))
