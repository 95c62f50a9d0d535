"""Outbound policy: may a web user call this destination? Pure: no I/O, no state.

Deny by default: a user with no `allow_outbound` entries may call nobody. An entry is a dial
pattern (matched against a number, or against the user part of a SIP URI whose host is the PBX
domain or the user's own domain, without a port) or a SIP URI allowed exactly. A dialed SIP URI
may carry only the `user` and `transport` parameters (see `SipAddress.parse_dialed`): `maddr` or
URI headers would take the call somewhere the policy never saw.
"""

from __future__ import annotations

import re

from gateway.identity.address import SipAddress, dialed_sip_uri
from gateway.identity.errors import IdentityError
from gateway.identity.model import WebUser
from gateway.identity.patterns import DialPattern

__all__ = ["may_call"]

_NUMBER = re.compile(
    r"\+?[0-9*#]+"
)  # a dialled number, visual separators removed (gateway.calls.setup.outbound)


def may_call(user: WebUser, destination: str, pbx_domain: str | None = None) -> bool:
    """Whether `user` may call `destination` (a number such as `0301234567` or a SIP URI)."""
    destination = destination.strip()
    if not destination:
        return False
    text = dialed_sip_uri(destination)
    if text is not None:
        try:
            address = SipAddress.parse_dialed(text)
        except IdentityError:
            return False
        for rule in user.allow_outbound:
            if isinstance(rule, SipAddress) and (rule.user, rule.host, rule.port) == (
                address.user,
                address.host,
                address.port,
            ):
                return True
        if address.host not in {pbx_domain, user.aor.host} or address.user is None:
            return False
        if address.port is not None:  # a pattern allows the PBX's SIP service, not any port of its host
            return False
        destination = address.user
    elif not _NUMBER.fullmatch(destination):  # a wildcard pattern must not bless `9;maddr=...` or `9>`
        return False
    return any(isinstance(rule, DialPattern) and rule.matches(destination) for rule in user.allow_outbound)
