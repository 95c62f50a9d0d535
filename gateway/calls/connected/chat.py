"""Chat during a call: text between the browser and the SIP party as SIP MESSAGE in the call's dialog
(RFC 3428 §4: a MESSAGE inside a dialog is allowed and carries the dialog's identifiers).

The browser's side is the call's data channel (the web leg's, gateway/media/webrtc/data_channel.py) or the
carrying session's `message {call_id, body}`; the SIP side's MESSAGE goes back on the data channel (if
the browser opened one) and to the carrying session as a `message` event, so a client without a data
channel reads it too. Like INFO (gateway/calls/connected/info.py), only connected or held calls carry it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.calls.boundary.commands import MediaSendText, NotifyMessage, NotifyMessageResult, SipMessage
from gateway.calls.boundary.events import SipMessageReceived, SipMessageResult, WebMessage

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def web_message(call: CallMachine, event: WebMessage) -> None:
    if event.session_id is not None:  # none: the call's own data channel carried it
        call.require_session(event.session_id)
    call.emit(SipMessage(call.call_id, event.body))


def sip_message(call: CallMachine, event: SipMessageReceived) -> None:
    call.emit(MediaSendText(call.call_id, event.body))
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyMessage(call.session_id, call.call_id, event.body))


def message_result(call: CallMachine, event: SipMessageResult) -> None:
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyMessageResult(call.session_id, call.call_id, event.status))
