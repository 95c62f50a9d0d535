"""Handlers of call transfer (states connected and holding): REFER both ways (RFC 3515), Replaces
(RFC 3891) for an attended transfer.

The web user transfers (`WebTransfer`): blind to a destination her outbound policy allows (the same
`dial_target` + `may_call` as a dial; refused: `error` destination_not_allowed and `transfer` failed, no
SIP), or attended to the far end of her consultation call (the driver checks it is hers and connected).
`SipRefer` goes out; its final response (`SipReferResult`) and the NOTIFYs (`SipTransferProgress`)
become `transfer` events {requested, accepted, progress, succeeded, failed}. A 2xx sipfrag means the
far end reached the target: the gateway ends its leg as the transferor does (BYE, `ended` transferred).
A refusal or a failing sipfrag keeps the call; the browser hears `transfer` failed. One transfer at a
time (`transfer_out`).

The SIP party transfers the web user (`SipReferReceived`): the target must pass the web user's policy,
or 403 (a REFER must not make the gateway dial what she may not). Allowed: 202, NOTIFY 100 Trying, and
the browser is asked to call the target (`transfer_requested`); how that call goes (`TransferOutcome`,
fed by the driver) is NOTIFYed, the final status ending the subscription. A REFER whose Refer-To carries
Replaces (an attended transfer, RFC 3891 §5) is carried out the same way, the browser's INVITE carrying
that Replaces (the driver adds it); when it names a dialog of this gateway's own (`own`: the transferor
consulted another web user of the gateway, whose call the new INVITE takes over) the INVITE goes to the
gateway's own listener and no policy applies: it can only join the web user to a call that exists.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from gateway.calls.boundary.commands import (
    Command,
    NotifyConnected,
    NotifyEnded,
    NotifyError,
    NotifyRinging,
    NotifyTransfer,
    NotifyTransferRequested,
    SipAnswerRefer,
    SipNotifyRefer,
    SipRefer,
    TransferState,
)
from gateway.calls.boundary.events import (
    ReplacedByTransfer,
    SipReferReceived,
    SipReferResult,
    SipTransferProgress,
    TransferOutcome,
    WebTransfer,
)
from gateway.calls.connected.midcall import end_connected
from gateway.calls.reasons import EndReason, local_reason
from gateway.calls.setup.outbound import allowed_target
from gateway.calls.setup.pbx_route import dial_domain, pbx_target
from gateway.calls.states import TimerName
from gateway.identity.address import SipAddress
from gateway.identity.errors import IdentityError
from gateway.identity.policy import may_call
from sipcore.dialogs.refer import Replaces
from sipcore.errors import SIPError

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

logger = logging.getLogger(__name__)

REPLACED_HANGUP: Final = 2.0  # seconds a replaced consultation call waits for its far end's BYE


def _tell(call: CallMachine, state: TransferState, status: int | None = None, message: str = "") -> None:
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyTransfer(call.session_id, call.call_id, state, status, message))


def _sip(status: int, phrase: str) -> str:
    return f"SIP {status} {phrase}".strip()


def web_transfer(call: CallMachine, event: WebTransfer) -> None:
    call.require_session(event.session_id)
    if call.transfer_out is not None:
        raise call.illegal(event, f"a transfer to {call.transfer_out} is under way")
    if event.destination is not None:
        target = _transfer_target(call, event)
        if isinstance(target, tuple):
            _refuse(call, *target)
            return
        target = event.route or target  # a room's number: the room at the gateway's own listener
        call.transfer_out_to(target)
        call.emit(SipRefer(call.call_id, target=target))
    else:
        assert event.consult_call_id is not None
        call.transfer_out_to(event.consult_call_id)
        call.emit(SipRefer(call.call_id, consult_call_id=event.consult_call_id))
    _tell(call, TransferState.REQUESTED, None, f"Transferring to {call.transfer_out}")


def _transfer_target(call: CallMachine, event: WebTransfer) -> str | tuple[EndReason, str]:
    """The Refer-To of a blind transfer to what the user typed: where her own dial of it would go. A
    number a route matches (`routes[].pbx`, its `rewrite`) is the URI her call would have, at the route's
    PBX; any other number is at the domain of the call's PBX (several PBXs), the SIP party's."""
    assert event.destination is not None
    target = allowed_target(event.user, event.destination, dial_domain(call.settings, event.user, call.pbx))
    plan = call.settings.pbx_plan
    if isinstance(target, tuple) or plan.route(event.user.tenant, target) is None:
        return target
    chosen = pbx_target(call.settings, event.user, event.destination)
    return chosen if isinstance(chosen, tuple) else chosen.target


def _refuse(call: CallMachine, code: EndReason, message: str) -> None:
    assert call.session_id is not None
    call.emit(NotifyError(call.session_id, call.call_id, code.value, message, "to"))
    _tell(call, TransferState.FAILED, None, message)


def refer_result(call: CallMachine, event: SipReferResult) -> None:
    if call.transfer_out is None:
        raise call.illegal(event, "no REFER of ours is out")
    if 200 <= event.status < 300:
        _tell(call, TransferState.ACCEPTED, event.status, "The transfer was accepted")
        return
    call.transfer_out_to(None)
    _tell(
        call,
        TransferState.FAILED,
        event.status,
        f"The transfer was refused: {_sip(event.status, event.phrase)}",
    )


def transfer_progress(call: CallMachine, event: SipTransferProgress) -> None:
    if call.transfer_out is None:
        return  # a NOTIFY after the transfer ended (a retransmission, a late 1xx): nothing to say
    if event.status < 200 and not event.terminated:
        _tell(call, TransferState.PROGRESS, event.status, _sip(event.status, event.phrase))
        return
    call.transfer_out_to(None)
    if 200 <= event.status < 300:
        _tell(call, TransferState.SUCCEEDED, event.status, "The call was transferred")
        end_connected(call, local_reason(EndReason.TRANSFERRED))
        return
    detail = _sip(event.status, event.phrase) if event.status >= 300 else "the subscription ended"
    _tell(
        call,
        TransferState.FAILED,
        event.status if event.status >= 300 else None,
        f"The transfer failed: {detail}",
    )


def refer_received(call: CallMachine, event: SipReferReceived) -> None:
    user = event.user
    if call.transfer_in is not None:
        call.emit(SipAnswerRefer(call.call_id, 491, "Request Pending"))
        return
    if user is None or call.session_id is None or call.web_gone:
        call.emit(SipAnswerRefer(call.call_id, 403, "No Web User To Transfer"))
        return
    if event.replaces and not _valid_replaces(event.replaces):
        call.emit(SipAnswerRefer(call.call_id, 400, "Bad Replaces In Refer-To"))
        return
    own = event.own and bool(event.replaces)
    target = event.target if own else _number_at_pbx(call, event.target)
    if not own and not may_call(user, target, call.settings.pbx_domain):
        call.emit(SipAnswerRefer(call.call_id, 403, "Transfer Target Not Allowed"))
        return
    call.transfer_in_to(target, event.replaces, own=own)
    call.emit(
        SipAnswerRefer(call.call_id, 202, "Accepted"),
        SipNotifyRefer(call.call_id, 100, "Trying"),
        NotifyTransferRequested(call.session_id, call.call_id, target),
    )
    call.start_timer(TimerName.REFER_WAIT, call.settings.refer_timeout)


def _number_at_pbx(call: CallMachine, target: str) -> str:
    """A Refer-To at a PBX's own address (sip:2000@<pbx.address>, as Asterisk's Transfer() and blind
    transfers write it) is the number at that PBX: sip:2000@<its domain>, which the user's dial policy
    judges as the number she may dial, and her call for it goes where her dialled numbers go. Any other
    target as it came."""
    try:
        address = SipAddress.parse_dialed(target)
    except IdentityError:
        return target  # refused by the policy as it stands
    if address.user is None or address.port is None:
        return target
    domain = call.settings.pbx_plan.number_at_pbx(address.host, address.port)
    if domain is None:
        return target
    return str(SipAddress(address.scheme, address.user, domain))


def transfer_outcome(call: CallMachine, event: TransferOutcome) -> None:
    if call.transfer_in is None:
        raise call.illegal(event, "no REFER of the SIP party is being reported on")
    if TimerName.REFER_WAIT in call.timers:  # the browser placed the call: its outcome is what counts
        call.cancel_timer(TimerName.REFER_WAIT)
    if event.status >= 200:
        call.transfer_in_to(None)
    call.emit(SipNotifyRefer(call.call_id, event.status, event.phrase or "Unknown"))


def referrer_outcome(command: Command) -> TransferOutcome | None:
    """What the call placed for the SIP party's REFER tells the call that accepted it (RFC 3515 §2.4.5),
    read off the placed call's own browser commands: ringing is 180, connected 200, and its end its SIP
    failure or 487 Request Terminated. None: nothing to tell. The runtime carries it to the referring
    call (its `TransferOutcome`, `transfer_outcome` above); a final status (200 and up) is the last."""
    match command:
        case NotifyRinging():
            return TransferOutcome(180, "Ringing")
        case NotifyConnected():
            return TransferOutcome(200, "OK")
        case NotifyEnded(sip_status=status, message=message):
            final = status if status is not None and status >= 300 else 487
            return TransferOutcome(final, message[:60] or "Request Terminated")
    return None


def replaced(call: CallMachine, event: ReplacedByTransfer) -> None:
    """Our attended transfer that named this call succeeded. The far end normally ends it (the INVITE
    with Replaces makes it BYE us, RFC 3891 §3); whatever is left after REPLACED_HANGUP is hung up."""
    call.start_timer(TimerName.REPLACED, REPLACED_HANGUP)


def replaced_expired(call: CallMachine, event: object) -> None:
    """The replaced consultation call is still up: hung up as its web user would (not once the browser
    is gone: it may come back for it)."""
    if call.session_id is None or call.web_gone:
        logger.info("call=%s not hung up after the transfer: no browser", call.call_id)
        return
    logger.info("call=%s replaced by a transfer: hanging up", call.call_id)
    end_connected(call, local_reason(EndReason.HANGUP))


def refer_expired(call: CallMachine, event: object) -> None:
    """The browser placed no call for the SIP party's REFER: the referrer hears it failed (408)."""
    if call.transfer_in is not None:
        call.transfer_in_to(None)
        call.emit(SipNotifyRefer(call.call_id, 408, "Request Timeout"))


def refer_while_closing(call: CallMachine, event: SipReferReceived) -> None:
    """The call is ending: nothing to transfer (RFC 3261 §15: the dialog is going away)."""
    call.emit(SipAnswerRefer(call.call_id, 481, "Call Is Ending"))


def _valid_replaces(value: str) -> bool:
    """Whether a Refer-To's Replaces is one a new INVITE may carry (RFC 3891 §6.1)."""
    try:
        Replaces.parse(value)
    except SIPError:
        return False
    return True
