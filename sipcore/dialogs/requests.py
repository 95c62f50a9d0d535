"""Builders of the requests the UA sends (RFC 3261 §8.1.1), and route-set handling (§12.2.1.1).

:class:`Endpoint` is the UA's own address as the world sees it: the public host and port written
into Via sent-by and Contact, the transport, and the capabilities it advertises. Out-of-dialog
requests (INVITE, OPTIONS, REGISTER) are built here with every
mandatory header (§8.1.1: To, From with a tag, Call-ID, CSeq, Max-Forwards 70, Via with a fresh
RFC 3261 branch); in-dialog requests are built by :mod:`sipcore.dialogs.dialog` through
:func:`build_request` and :func:`apply_route_set`; the CANCEL of an INVITE by
:func:`gateway.sip.transactions.client.build_cancel`. The transaction layer may replace the Via (its own
sent-by and branch) when it sends the request. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sipcore.syntax.headers import (
    CSeq,
    NameAddr,
    Via,
    is_token,
    new_branch,
    new_call_id,
    new_tag,
)
from sipcore.syntax.message import Headers, Request
from sipcore.syntax.uri import URI, SipURI

__all__ = [
    "DEFAULT_ALLOW",
    "MAX_FORWARDS",
    "Endpoint",
    "apply_route_set",
    "build_invite",
    "build_message",
    "build_options",
    "build_register",
    "build_request",
]

MAX_FORWARDS = 70  # RFC 3261 §8.1.1.6
DEFAULT_ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "WS", "WSS", "SCTP"})
# RFC 3261 §19.1.1 table: URI components not allowed in a Request-URI.
_NOT_IN_REQUEST_URI = frozenset({"method"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Our side of the wire: public address (Via sent-by and Contact), transport, capabilities."""

    host: str
    port: int | None = None
    transport: str = "UDP"
    user_agent: str = "sip-webrtc-gateway"
    allow: tuple[str, ...] = DEFAULT_ALLOW
    supported: tuple[str, ...] = ()
    contact_user: str | None = None

    def __post_init__(self) -> None:
        if ":" in self.host and not self.host.startswith("["):  # an IPv6 literal: an IPv6reference
            object.__setattr__(self, "host", f"[{self.host}]")  # in Via and Contact (RFC 3261 §25.1)
        if self.transport.upper() != self.transport or self.transport not in _TRANSPORTS:
            raise ValueError(f"invalid transport {self.transport!r} (expected one of {sorted(_TRANSPORTS)})")
        for name in (*self.allow, *self.supported):
            if not is_token(name):
                raise ValueError(f"invalid method or option tag {name!r}")
        if any(ch in self.user_agent for ch in "\r\n"):
            raise ValueError(f"line break in user agent {self.user_agent!r}")
        try:
            self.contact_uri()
        except ValueError as exc:
            raise ValueError(f"invalid endpoint address {self.host!r}:{self.port!r}: {exc}") from None

    @property
    def secure(self) -> bool:
        return self.transport in ("TLS", "WSS")

    def contact_uri(self, user: str | None = None) -> SipURI:
        """Our Contact URI (RFC 3261 §8.1.1.8), with ``user`` (default ``contact_user``); a transport
        parameter unless UDP. A ``sip:`` URI over TLS too (``;transport=tls``, as Asterisk and Kamailio
        write it): ``sips:`` would demand TLS on every hop (RFC 5630 §3.1.1) and a phone behind the
        proxy on UDP could not even send its ACK."""
        params: tuple[tuple[str, str | None], ...] = ()
        if self.transport != "UDP":
            params = (("transport", self.transport.lower()),)
        return SipURI(
            self.host, user if user is not None else self.contact_user, None, self.port, params, (), "sip"
        )

    def contact(self, user: str | None = None) -> NameAddr:
        return NameAddr(self.contact_uri(user))

    def via(self, branch: str | None = None) -> Via:
        """A Via for a new request: fresh branch (RFC 3261 §8.1.1.7) and rport (RFC 3581 §3)."""
        return Via(
            self.transport, self.host, self.port, (("branch", branch or new_branch()), ("rport", None))
        )


def apply_route_set(target: URI, route_set: Sequence[NameAddr]) -> tuple[URI, tuple[NameAddr, ...]]:
    """Request-URI and Route values for a request to ``target`` through ``route_set``
    (RFC 3261 §12.2.1.1, also used for a preloaded route set, §8.1.2).

    Empty route set: Request-URI = target, no Route. First route loose (``lr``): Request-URI =
    target, Route = the route set. First route strict (RFC 2543): Request-URI = the first route's
    URI without the parameters a Request-URI may not carry, Route = the remaining routes followed
    by the target."""
    if not route_set:
        return target, ()
    first = route_set[0].uri
    if isinstance(first, SipURI) and first.param("lr") is not None:
        return target, tuple(route_set)
    request_uri: URI = first
    if isinstance(first, SipURI):
        params = tuple(p for p in first.params if p[0].lower() not in _NOT_IN_REQUEST_URI)
        request_uri = SipURI(first.host, first.user, first.password, first.port, params, (), first.scheme)
    return request_uri, (*route_set[1:], NameAddr(target))


def build_request(
    method: str,
    target: URI,
    *,
    endpoint: Endpoint,
    from_: NameAddr,
    to: NameAddr,
    call_id: str,
    cseq: int,
    route_set: Sequence[NameAddr] = (),
    contact: NameAddr | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    branch: str | None = None,
    capabilities: bool = False,
) -> Request:
    """A request with the RFC 3261 §8.1.1 headers, routed by :func:`apply_route_set`.

    ``capabilities`` adds Allow and Supported (RFC 3261 §20.5, §20.37: SHOULD in INVITE, OPTIONS,
    REGISTER and target refreshes)."""
    if body and content_type is None:
        raise ValueError(f"{method} with a body needs a content type")
    request_uri, routes = apply_route_set(target, route_set)
    items: list[tuple[str, str]] = [
        ("Via", str(endpoint.via(branch))),
        ("Max-Forwards", str(MAX_FORWARDS)),
        *(("Route", str(route)) for route in routes),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", str(CSeq(cseq, method))),
    ]
    if contact is not None:
        items.append(("Contact", str(contact)))
    items.append(("User-Agent", endpoint.user_agent))
    if capabilities:
        items.append(("Allow", ", ".join(endpoint.allow)))
        if endpoint.supported:
            items.append(("Supported", ", ".join(endpoint.supported)))
    items.extend(headers)
    if content_type is not None:
        items.append(("Content-Type", content_type))
    return Request(method, request_uri, Headers(tuple(items)), body)


def _with_tag(address: NameAddr) -> NameAddr:
    return address if address.tag is not None else address.with_param("tag", new_tag())


def build_invite(
    endpoint: Endpoint,
    *,
    from_: NameAddr,
    to: NameAddr,
    request_uri: URI | None = None,
    body: bytes = b"",
    content_type: str | None = "application/sdp",
    call_id: str | None = None,
    cseq: int = 1,
    route_set: Sequence[NameAddr] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> Request:
    """An initial INVITE (RFC 3261 §13.2.1): From with a fresh tag, To without one, Contact,
    Allow and Supported; ``request_uri`` defaults to the To URI (§8.1.1.1)."""
    if to.tag is not None:
        raise ValueError(f"an initial INVITE has no To tag: {to}")
    return build_request(
        "INVITE",
        request_uri or to.uri,
        endpoint=endpoint,
        from_=_with_tag(from_),
        to=to,
        call_id=call_id or new_call_id(endpoint.host),
        cseq=cseq,
        route_set=route_set,
        contact=endpoint.contact(),
        body=body,
        content_type=content_type if body else None,
        headers=headers,
        capabilities=True,
    )


def build_options(
    endpoint: Endpoint,
    *,
    from_: NameAddr,
    to: NameAddr,
    request_uri: URI | None = None,
    call_id: str | None = None,
    route_set: Sequence[NameAddr] = (),
) -> Request:
    """An OPTIONS query or keep-alive (RFC 3261 §11.1), asking for SDP (Accept)."""
    return build_request(
        "OPTIONS",
        request_uri or to.uri,
        endpoint=endpoint,
        from_=_with_tag(from_),
        to=to,
        call_id=call_id or new_call_id(endpoint.host),
        cseq=1,
        route_set=route_set,
        contact=endpoint.contact(),
        headers=(("Accept", "application/sdp"),),
        capabilities=True,
    )


def build_message(endpoint: Endpoint, *, from_: NameAddr, to: NameAddr, text: str) -> Request:
    """A page-mode instant message (RFC 3428 §4): MESSAGE out of dialog, text/plain, no Contact
    (§5: a MESSAGE MUST NOT carry one)."""
    return build_request(
        "MESSAGE",
        to.uri,
        endpoint=endpoint,
        from_=_with_tag(from_),
        to=to,
        call_id=new_call_id(endpoint.host),
        cseq=1,
        body=text.encode("utf-8"),
        content_type="text/plain;charset=UTF-8",
    )


def build_register(
    endpoint: Endpoint,
    *,
    aor: NameAddr,
    registrar: SipURI,
    call_id: str,
    cseq: int,
    expires: int,
    contact: NameAddr | None = None,
    route_set: Sequence[NameAddr] = (),
) -> Request:
    """A REGISTER (RFC 3261 §10.2): Request-URI = registrar domain (no user part), To = From =
    the AOR (From with a tag), Contact with an ``expires`` parameter and an Expires header;
    ``expires=0`` removes the binding (§10.2.2)."""
    if registrar.user is not None:
        raise ValueError(f"registrar URI must not have a user part: {registrar}")
    if expires < 0:
        raise ValueError(f"invalid expires {expires!r}")
    binding = (contact or endpoint.contact()).with_param("expires", str(expires))
    return build_request(
        "REGISTER",
        registrar,
        endpoint=endpoint,
        from_=_with_tag(aor),
        to=NameAddr(aor.uri, aor.display_name),
        call_id=call_id,
        cseq=cseq,
        route_set=route_set,
        contact=binding,
        headers=(("Expires", str(expires)),),
        capabilities=True,
    )
