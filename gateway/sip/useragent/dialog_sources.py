"""Which sources may act on a dialog: its own peer, a trusted source (issue 32). Pure.

The transaction layer lets a request that matches one of our dialogs through from any source
(gateway/sip/transactions/policy.py): the phone of a caller from outside the trust domain must be able
to hang up. But a dialog's key (Call-ID and tags, RFC 3261 §12) is no secret: anyone who learnt it (a
trace, a log, a former hop) could move the call's media with a re-INVITE or UPDATE, end it with a BYE,
or transfer it with a REFER. RFC 3261 §26.3.2 leaves this to the transport (TLS) or to the UA; the UA
therefore accepts an in-dialog request, and the ACK of its own 2xx, only from:

- an address the dialog's messages went to or came from: where its INVITE came from, where ours and
  our in-dialog requests were sent (the remote target resolved, RFC 3261 §12.2.1.1; ``remember``);
- the host of the dialog's remote target (its Contact) or of its next hop (a browser's WebSocket flow);
- a trusted source (``sip.trusted_sources``, else the PBX's hosts: a PBX that sends from several hosts);
- or any source with ``sip.in_dialog_any_source: true`` (the behaviour before issue 32).

Another source gets 403 Forbidden (RFC 3261 §21.4.4; an ACK, which has no response, is dropped) and
changes nothing: the request never reaches the call. Requests over WebSocket come from browsers'
SIP libraries, which gateway/websip authenticates per flow: they are not checked here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from gateway.sip.transports.transport import Source
from sipcore.dialogs.dialog import Dialog
from sipcore.location.routing import Address, Target
from sipcore.syntax.uri import SipURI

__all__ = ["from_dialog_peer", "remember"]


def _normal(host: str) -> str:
    """An address as one string per host: brackets, zone and IPv4-mapped IPv6 taken off, lower-case."""
    bare = host.strip("[]").split("%")[0].lower()
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return bare
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def remember(peers: set[str], address: Address | None) -> None:
    """Note that the dialog's messages were exchanged with ``address`` (host, port)."""
    if address is not None and address[0]:
        peers.add(_normal(address[0]))


def from_dialog_peer(
    source: Source,
    peers: set[str],
    dialog: Dialog | None,
    next_hop: Target | None,
    trusts: Callable[[str], bool],
) -> bool:
    """Whether a request of the dialog from ``source`` may act on it (see the module note)."""
    if source.transport.name in ("WS", "WSS"):
        return True
    host = _normal(source.host)
    known = set(peers)
    if dialog is not None and isinstance(dialog.remote_target, SipURI):
        known.add(_normal(dialog.remote_target.host))
    if next_hop is not None:
        known.add(_normal(next_hop.host))
    return host in known or trusts(source.host)
