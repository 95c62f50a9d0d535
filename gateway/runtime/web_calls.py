"""Calls between web users of this gateway, and what a call for a busy web user does.

Web to web (issue 16 item 6, `calls.web_calls: direct`): when a web user dials another web user of
this gateway (her id, display name, number, an alias, or her SIP address) and her dial policy allows
that number, the gateway rings the callee itself, with no PBX: the caller's call is placed as usual but
its INVITE goes to the gateway's own SIP listener (`UserAgent.own_address`), where it arrives as an
inbound call for the callee and rings her sessions. Both legs are WebRTC, each terminated by the
gateway's media bridge (ICE + DTLS-SRTP with each browser, SRTP re-encrypted per leg; plain RTP between
the two bridges on loopback). Everything a call can do (hold, DTMF, transfer, call waiting, busy
policy) works the same. With `calls.web_calls: p2p` the loop is rung the same way but both halves pass
the SDP through (runtime/passthrough.py): the two browsers' ICE and DTLS-SRTP run between them, trickle
ICE crossing the loop as INFO, and the gateway carries no media (no RTP port, no transcoding: Opus end
to end; across NATs the browsers need a TURN server from `ice.servers`). A callee who is not online is reached through the PBX when there is one (her
desk phone, voicemail), else the call ends `unavailable` (480).

A web user's call or blind transfer to a room's number (`rooms.numbers`) goes the same way to the own
listener (`room_route`), where it joins the room's mix (gateway/runtime/rooms/): how a SIP library's
three-way call is mixed in the gateway (docs/signaling.md "Three-way calls").

What a call for a busy web user does (users[].on_busy) is the call layer's: gateway/calls/setup/busy.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from gateway.identity.address import SipAddress, dialed_sip_uri
from gateway.identity.errors import IdentityError
from gateway.identity.lookup import IdentityMap
from gateway.identity.model import WebUser

__all__ = [
    "WebCallRefused",
    "find_web_user",
    "room_route",
    "self_route",
    "web_route",
]

logger = logging.getLogger(__name__)


class OwnAddress(Protocol):
    def own_address(self) -> tuple[str, str, int]: ...


class WebCallRefused(Exception):
    """A web user dialled one she may not call (`forbidden`), or herself."""

    def __init__(self, message: str, *, forbidden: bool) -> None:
        super().__init__(message)
        self.forbidden = forbidden


async def web_route(
    identity: IdentityMap,
    ua: OwnAddress,
    caller: WebUser,
    to: str,
    *,
    pbx: bool,
    elsewhere: Callable[[WebUser], Awaitable[str | None]] | None = None,
    tag: str = "",
) -> str | None:
    """The Request-URI of the web user `to` names, through the gateway's own SIP listener; None when
    `to` names no web user, or she is offline and there is a PBX (`pbx`) to reach her number at.

    In a cluster (gateway/cluster/routing.py): `elsewhere` gives the Request-URI at another instance
    holding a callee who has no session here (None: online nowhere), and `tag` is appended to the own
    listener's Request-URI (so that it rings here and is not redirected)."""
    # only her own tenant's users (users[].tenant, config/pbxs.py): the others' numbers are their PBX's
    tenant = [user for user in await identity.store.all_users() if user.tenant == caller.tenant]
    callee = find_web_user(tenant, to)
    if callee is None or callee.aor.user is None:
        return None
    if callee.id == caller.id:
        raise WebCallRefused("You cannot call yourself", forbidden=False)
    if not (identity.may_call(caller, callee.aor.user) or identity.may_call(caller, str(callee.aor))):
        raise WebCallRefused(f"You may not call {callee.display_name}", forbidden=True)
    if not await identity.presence.sessions_of(callee.id):
        if elsewhere is not None and (route := await elsewhere(callee)) is not None:
            logger.info("%s calls web user %s on another instance", caller.id, callee.id)
            return route
        if pbx:
            return None  # not online: her number at the PBX (a desk phone, voicemail)
    try:
        transport, host, port = ua.own_address()
    except RuntimeError:
        return None
    logger.info("%s calls web user %s directly", caller.id, callee.id)
    return self_route(callee, transport, host, port) + tag


def find_web_user(users: Iterable[WebUser], destination: str) -> WebUser | None:
    """The web user `destination` names: her id or display name (any case), her number or an alias
    (visual separators ignored), or her SIP address (`sip:1002@domain`, `1002@domain`); else None."""
    text = destination.strip()
    if not text:
        return None
    lowered = text.lower()
    uri = dialed_sip_uri(text)
    if uri is not None:
        try:
            address = SipAddress.parse_dialed(uri)
        except IdentityError:
            return None
        for user in users:
            if (address.user, address.host.lower()) == (user.aor.user, user.aor.host.lower()):
                return user
        return None
    number = "".join(c for c in text if c not in " ().-")
    for user in users:
        if lowered == user.id.lower() or lowered == user.display_name.lower():
            return user
        if number == user.aor.user or number in user.aliases or lowered in user.aliases:
            return user
    return None


def room_route(ua: OwnAddress, numbers: frozenset[str], to: str) -> str | None:
    """The Request-URI of the room whose number `to` is (one of `rooms.numbers`, dialled or the user part
    of a SIP URI) through the gateway's own SIP listener: a web user's call or blind transfer to it joins
    the room's mix here rather than going to the PBX (docs/signaling.md "Three-way calls"); else None."""
    text = to.strip()
    uri = dialed_sip_uri(text)
    if uri is not None:
        try:
            text = SipAddress.parse_dialed(uri).user or ""
        except IdentityError:
            return None
    if text not in numbers:
        return None
    try:
        transport, host, port = ua.own_address()
    except RuntimeError:
        return None
    return _listener_uri(text.replace("#", "%23"), transport, host, port)


def self_route(callee: WebUser, transport: str, host: str, port: int) -> str:
    """The Request-URI that reaches `callee` through this gateway's own SIP listener."""
    return _listener_uri(callee.aor.user or "", transport, host, port)


def _listener_uri(user: str, transport: str, host: str, port: int) -> str:
    literal = f"[{host}]" if ":" in host and not host.startswith("[") else host
    suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
    return f"sip:{user}@{literal}:{port}{suffix}"
