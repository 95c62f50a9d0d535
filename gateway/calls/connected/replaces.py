"""An INVITE with Replaces taking a connected call over (RFC 3891 §3): attended transfer or pickup on
the SIP side, the web user staying on the call.

The UA has matched the dialog (Call-ID, our tag, their tag), checked the source and `early-only`; the
driver hands the new INVITE to the call whose SIP leg it names as `SipReplacingInvite`. The call core
treats it as the SIP party's re-INVITE arriving on a new dialog:

- while a re-INVITE (ours or theirs) is under way it is refused 491 and the call goes on as it was;
- otherwise `SipTakeOver` tells the runtime which INVITE the re-INVITE answer is for, the browser hears
  `replaced` (who the SIP party is now), and `midcall.remote_reinvite` runs as for any re-INVITE: its
  offer through the bridge (`MediaSipUpdate`: the web leg keeps its media, the bridge translates to the
  new party's codec and address), an offerless INVITE gets our full offer in the 200 and the answer in
  the ACK. The answer goes out as `SipRespondReinvite`, which the runtime sends on the new INVITE; once
  that 2xx is out it ends the old dialog (BYE, or CANCEL when it was our early dialog). An offer the
  bridge cannot take (`MediaFailed` with a SIP status) refuses the new INVITE and keeps the old leg.
- the web user's outbound call while it rings is picked up (`gateway/calls/setup/pickup.py`); in any other
  state (an inbound call ringing or being answered, closing) the INVITE gets 481: there is no call here
  for it to take over (the UA already answers 481 for an early dialog we are the UAS of, §3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.calls.boundary.commands import NotifyReplaced, SipRefuseReplacing, SipTakeOver
from gateway.calls.boundary.events import (
    MediaFailed,
    MediaSipAnswerReady,
    SipReinviteReceived,
    SipReplacingInvite,
)
from gateway.calls.connected import midcall
from gateway.calls.reasons import phrase
from gateway.calls.states import Reinvite

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def replacing_invite(call: CallMachine, event: SipReplacingInvite) -> None:
    """States connected and holding."""
    if call.replacing or call.reinvite not in (None, Reinvite.RETRY_WAIT):
        call.emit(SipRefuseReplacing(call.call_id, 491, phrase(491)))  # RFC 3261 §14.2 by analogy
        return
    call.emit(SipTakeOver(call.call_id))
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyReplaced(call.session_id, call.call_id, event.from_uri, event.from_display))
    midcall.remote_reinvite(call, SipReinviteReceived(event.sdp))
    call.replacing_to(_answering(call))  # its offer is with the bridge


def _answering(call: CallMachine) -> bool:
    return call.reinvite is Reinvite.ANSWERING


def replacing_elsewhere(call: CallMachine, event: SipReplacingInvite) -> None:
    """Any state but connected and holding: nothing confirmed to take over."""
    call.emit(SipRefuseReplacing(call.call_id, 481, phrase(481)))


def media_failed(call: CallMachine, event: MediaFailed) -> None:
    """Connected/holding: the replacing INVITE's offer is unusable (488...): refuse it, keep the old leg;
    any other failure ends the call as usual."""
    if call.replacing and _answering(call) and event.sip_status is not None:
        call.replacing_to(False)
        call.reinvite_to(None)
        call.emit(SipRefuseReplacing(call.call_id, event.sip_status, phrase(event.sip_status)))
        return
    midcall.media_failed(call, event)


def answer_ready(call: CallMachine, event: MediaSipAnswerReady) -> None:
    """Connected/holding: the bridge's answer, to a re-INVITE or to the replacing INVITE alike."""
    call.replacing_to(False)
    midcall.reanswer_ready(call, event)
