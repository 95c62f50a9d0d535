"""Who is calling, as the headers of an INVITE tell it (pure; no trust decision is made here).

- The asserted identity: P-Asserted-Identity (RFC 3325 §9.1: one or two values, a SIP/SIPS URI and/or a tel
  URI; the SIP one is preferred here), else the older Remote-Party-ID (draft-ietf-sip-privacy-04, still
  sent by Cisco, Asterisk and many carriers) with party=calling or no party. RFC 3325 §5: only meaningful
  from a trusted peer: the caller of :func:`asserted_identity` decides.
- Diversions: Diversion (RFC 5806 §3: the topmost value is the most recent redirection, with reason= and
  counter=) or, when there is none, History-Info (RFC 7044: entries by index; the cause of a retargeting is
  the Reason header escaped into the URI, e.g. ``?Reason=SIP%3Bcause%3D302``). Oldest first in the result:
  the number originally called, then each place the call went.

Malformed values are skipped, not fatal: identity is information for the person called, and one bad
header must not fail a call that is otherwise fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from sipcore.errors import SIPError
from sipcore.syntax.headers import NameAddr, get_param, parse_name_addr, split_commas
from sipcore.syntax.message import Headers

__all__ = ["Diversion", "Party", "asserted_identity", "diversions"]

MAX_DIVERSIONS = 10  # what one INVITE may report (a loop of redirections says nothing more)
_CAUSE = re.compile(r"cause=(\d{3})")


@dataclass(frozen=True, slots=True)
class Party:
    uri: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Diversion:
    """A place the call was diverted from (``uri``), and why: a Diversion reason (``user-busy``,
    ``no-answer``, ``unconditional``...) or a History-Info cause (``302``, ``486``...)."""

    uri: str
    reason: str | None = None


def _values(headers: Headers, name: str) -> list[NameAddr]:
    found = []
    for value in headers.get_all(name):
        try:
            parts = split_commas(value, name)
        except SIPError:
            continue
        for part in parts:
            try:
                found.append(parse_name_addr(part.strip(), name))
            except SIPError:
                continue
    return found


def _party(value: NameAddr) -> Party:
    uri = str(value.uri).split("?", 1)[0]  # no escaped headers in what the browser is shown
    return Party(uri, value.display_name or None)


def asserted_identity(headers: Headers) -> Party | None:
    """P-Asserted-Identity (its SIP URI first), else a calling Remote-Party-ID; None when neither."""
    asserted = _values(headers, "P-Asserted-Identity")
    if asserted:
        sip = [v for v in asserted if str(v.uri).lower().startswith(("sip:", "sips:"))]
        return _party((sip or asserted)[0])
    for value in _values(headers, "Remote-Party-ID"):
        if (get_param(value.params, "party") or "calling").lower() == "calling":
            return _party(value)
    return None


def diversions(headers: Headers) -> tuple[Diversion, ...]:
    """Where the call was diverted from, oldest first (Diversion, else History-Info)."""
    diverted = _values(headers, "Diversion")
    if diverted:
        oldest_first = list(reversed(diverted))[:MAX_DIVERSIONS]
        return tuple(Diversion(_party(v).uri, get_param(v.params, "reason")) for v in oldest_first)
    entries = []
    for value in _values(headers, "History-Info"):
        index = get_param(value.params, "index") or ""
        order = tuple(int(n) for n in index.split(".") if n.isdigit())
        cause = _CAUSE.search(unquote(str(value.uri).partition("?")[2]))
        entries.append((order, Diversion(_party(value).uri, cause.group(1) if cause else None)))
    entries.sort(key=lambda item: item[0])
    # the last entry is where the call is now (this INVITE's target): not a diversion
    return tuple(d for _, d in entries[:-1][:MAX_DIVERSIONS])
