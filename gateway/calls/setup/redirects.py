"""Following a 3xx redirect of an outbound call (RFC 3261 §8.1.3.4), as far as policy allows.

The PBX answered our INVITE with a 3xx and its Contacts (best q-value first, `sipcore.location.redirect`).
`calls.follow_redirects` says which of them the gateway may call in the web user's name:

- `off`: none; the call ends "redirected" as before;
- `pbx` (default): a target on one of the PBX's own hosts (`pbx.domain`, `pbx.address`,
  `pbx.outbound_proxy`, any port: the PBX names its own services), whose user part the web user's
  dial patterns allow, as if she had dialled it (`may_call` on `sip:<user>@<pbx domain>`);
- `policy`: also any target `may_call` allows as dialled (an exact SIP URI in `allow_outbound`, or a
  pattern on her own or the PBX's domain).

The first allowed target not called yet gets the same offer in a new INVITE (`SipInvite`, sent to the
target's own host unless it is the PBX domain without a port), the browser hears `redirected`
(`NotifyRedirected`) and the call goes on in `inviting`. At most `MAX_REDIRECTS` are followed (a loop
bound); only before any early media (after it, the browser already has the first target's answer).
A refusal ends the call with reason `redirected` and a message that says why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from gateway.calls.boundary.commands import NotifyRedirected, SipInvite
from gateway.calls.boundary.events import SipFailed
from gateway.calls.reasons import EndReason, Reason, local_reason, reason_for_status
from gateway.calls.setup.pbx_route import invite_identity
from gateway.calls.states import CallState, TimerName
from gateway.identity.address import SipAddress
from gateway.identity.errors import IdentityError
from gateway.identity.policy import may_call

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

__all__ = ["MAX_REDIRECTS", "follow_redirect", "redirect_allowed"]

logger = logging.getLogger(__name__)

MAX_REDIRECTS: Final = 5


def redirect_allowed(call: CallMachine, target: str) -> str | None:
    """Why the web user may not be redirected to `target` (a SIP URI), or None when she may."""
    settings = call.settings
    assert call.user is not None
    try:
        address = SipAddress.parse_dialed(target)
    except IdentityError as exc:
        return f"not a SIP address the gateway calls: {exc}"
    pbx_hosts = {h.lower() for h in (settings.pbx_domain, *settings.pbx_hosts) if h is not None}
    if address.host.lower() in pbx_hosts and settings.pbx_domain is not None:
        checked = f"sip:{address.user}@{settings.pbx_domain}"
        if may_call(call.user, address.user or "", settings.pbx_domain) or may_call(
            call.user, checked, settings.pbx_domain
        ):
            return None
        if settings.follow_redirects != "policy":
            return "you may not call it"
    elif settings.follow_redirects != "policy":
        return "it is not on the PBX (calls.follow_redirects: pbx)"
    if may_call(call.user, target, settings.pbx_domain):
        return None
    return "you may not call it"


def follow_redirect(call: CallMachine, event: SipFailed) -> Reason | None:
    """Follow the 3xx `event` (None: the new INVITE is on its way), or the reason the call ends with."""
    settings = call.settings
    if settings.follow_redirects == "off" or not event.contacts:
        return reason_for_status(event.status, event.phrase)
    if call.state is not CallState.INVITING or call.early_sip_sdp is not None:
        return _ended(
            event, "The call was redirected after its early media, which the gateway does not follow"
        )
    if len(call.redirects) >= MAX_REDIRECTS:
        return _ended(event, f"The call was redirected more than {MAX_REDIRECTS} times")
    refusals: list[str] = []
    for target in event.contacts:
        if target in call.redirects or target == call.target:
            refusals.append(f"{target}: called already (a redirect loop)")
            continue
        why = redirect_allowed(call, target)
        if why is not None:
            refusals.append(f"{target}: {why}")
            continue
        _invite(call, target, event.status)
        return None
    logger.info("call=%s %d redirect not followed: %s", call.call_id, event.status, "; ".join(refusals))
    first = refusals[0] if refusals else "no target"
    return _ended(event, f"The call was redirected to {first}")


def _invite(call: CallMachine, target: str, status: int) -> None:
    assert call.user is not None and call.session_id is not None and call.local_sip_sdp is not None
    logger.info("call=%s %d: following the redirect to %s", call.call_id, status, target)
    call.redirect_to(target)  # the new target must answer within the setup timeout again
    user = call.user
    address = SipAddress.parse_dialed(target)
    domain = call.settings.pbx_plan.domain(call.pbx) if call.pbx is not None else call.settings.pbx_domain
    direct = address.port is not None or address.host.lower() != (domain or "").lower()
    identity, _ = invite_identity(call, user)
    call.cancel_timer(TimerName.RING)
    call.start_timer(TimerName.SETUP, call.settings.setup_timeout)
    call.emit(
        NotifyRedirected(call.session_id, call.call_id, target, status),
        SipInvite(call.call_id, target, identity, call.local_sip_sdp, direct=direct, pbx=call.pbx),
    )


def _ended(event: SipFailed, message: str) -> Reason:
    return local_reason(EndReason.REDIRECTED, event.status, message)
