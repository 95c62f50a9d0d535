"""INFO (RFC 6086) relayed between the browser and the SIP party during a call (connected or held).

DTMF INFO never gets here (it is RemoteDtmf / SipInfoDtmf); which content types may pass is the SIP layer's
and the signaling layer's business (sip.info_content_types): the call only carries the bodies across and
tells the browser what the SIP party answered to its INFO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.calls.boundary.commands import NotifyInfo, NotifyInfoResult, SipInfo
from gateway.calls.boundary.events import SipInfoReceived, SipInfoResult, WebInfo

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def web_info(call: CallMachine, event: WebInfo) -> None:
    call.require_session(event.session_id)
    call.emit(SipInfo(call.call_id, event.content_type, event.body))


def sip_info(call: CallMachine, event: SipInfoReceived) -> None:
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyInfo(call.session_id, call.call_id, event.content_type, event.body))


def info_result(call: CallMachine, event: SipInfoResult) -> None:
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyInfoResult(call.session_id, call.call_id, event.status))
