"""Call transfer inside a dialog of the user agent: REFER and the refer package's NOTIFYs (RFC 3515).

A :class:`~gateway.sip.useragent.ua_calls.Call` keeps one :class:`Transfers`. Both directions:

- **We transfer** (the web user asked): :meth:`Transfers.refer` sends REFER with Refer-To (and
  Referred-By) in the confirmed dialog and returns its final response; a 2xx creates the implicit
  subscription, whose NOTIFYs (message/sipfrag, §2.4.5) are answered 200 and reported as
  :class:`~gateway.sip.useragent.ua_events.ReferProgress`. A NOTIFY that is not of the refer package gets 489 Bad
  Event (RFC 6665 §8.2.1), a malformed one 400, one without a REFER of ours 481.
- **We are asked to transfer** (the far end sends REFER): it is reported as
  :class:`~gateway.sip.useragent.ua_events.ReferReceived`; the call layer decides (:meth:`Transfers.answer`, 202
  Accepted or a refusal such as 403) and reports the referred call with :meth:`Transfers.notify`
  (100 Trying, then the final status, which terminates the subscription, §2.4.4). One REFER at a time:
  a second while one is pending gets 491 (RFC 3261 §14.2 by analogy; the REFER has no glare rules of
  its own). A REFER without exactly one sip/sips Refer-To gets 400 (§2.4.1), one in an early dialog 481.

Calls whose owner does not transfer (``Call.transfers`` False) answer REFER and NOTIFY 405; a SIP
library's dialogs over WebSocket transfer (gateway/websip/transfer.py), their endpoint's Allow says which.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent.ua_events import ReferProgress, ReferReceived
from sipcore.dialogs.dialog import DialogState
from sipcore.dialogs.refer import (
    SIPFRAG_CONTENT_TYPE,
    ReferNotify,
    notify_headers,
    parse_event,
    parse_refer_to,
    sipfrag,
)
from sipcore.errors import SIPError
from sipcore.syntax.headers import NameAddr
from sipcore.syntax.message import Response
from sipcore.syntax.uri import SipURI

if TYPE_CHECKING:
    from gateway.sip.useragent.ua_calls import Call

__all__ = ["TRANSFER_METHODS", "Transfers"]

logger = logging.getLogger(__name__)

TRANSFER_METHODS = ("REFER", "NOTIFY")


class Transfers:
    """The REFERs of one call, in both directions (see the module note)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.referring = False  # our REFER was accepted: its NOTIFYs are expected
        self._refer_in: IncomingRequest | None = None  # their REFER, not answered yet
        self._subscription: int | None = None  # CSeq of their REFER we report on (Event id)
        self._notifying = False

    # --- we transfer -------------------------------------------------------------------------------------
    async def refer(self, refer_to: NameAddr, referred_by: NameAddr | None = None) -> Response:
        """Send REFER (RFC 3515 §2.4.1) in the confirmed dialog; the final response."""
        call = self.call
        dialog = call._established()
        headers = [("Refer-To", str(refer_to))]
        if referred_by is not None:
            headers.append(("Referred-By", str(referred_by)))  # RFC 3892
        logger.info("sip_call_id=%s REFER to %s", call.call_id, refer_to)
        final, _ = await call._send(dialog.create_request("REFER", headers=headers))
        self.referring = 200 <= final.status < 300
        logger.info("sip_call_id=%s REFER answered %d %s", call.call_id, final.status, final.reason)
        return final

    def _on_notify(self, incoming: IncomingRequest) -> tuple[int, str | None]:
        request = incoming.request
        headers = request.headers
        try:
            event = headers.get("Event")
            if event is None or parse_event(event)[0] != "refer":
                return 489, None  # RFC 6665 §8.2.1 (RFC 3265 §3.2.4)
            notify = ReferNotify.parse(
                event, headers.get("Subscription-State"), headers.get("Content-Type"), request.body
            )
        except SIPError as exc:
            logger.info("sip_call_id=%s NOTIFY refused: %s", self.call.call_id, exc.detail)
            return 400, exc.reason_phrase
        if not self.referring:
            return 481, "Subscription Does Not Exist"
        if notify.terminated:
            self.referring = False
        self.call._emit(ReferProgress(notify.status, notify.reason, notify.terminated))
        return 200, None

    # --- we are asked to transfer --------------------------------------------------------------------------
    def _on_refer(self, incoming: IncomingRequest) -> tuple[int, str | None] | None:
        request = incoming.request
        dialog = self.call.dialog
        if dialog is None or dialog.state is not DialogState.CONFIRMED:  # early: nothing to transfer yet
            return 481, "Call Not Established"
        if self._refer_in is not None or self._notifying:
            return 491, None
        values = request.headers.get_all("Refer-To")
        if len(values) != 1:
            return 400, "Exactly One Refer-To Required"
        try:
            address = parse_refer_to(values[0])
        except SIPError as exc:
            logger.info("sip_call_id=%s REFER refused: %s", self.call.call_id, exc.detail)
            return 400, exc.reason_phrase
        uri = address.uri
        assert isinstance(uri, SipURI)  # parse_refer_to refuses any other scheme
        replaces = next((v for k, v in uri.headers if k.lower() == "replaces"), "")
        bare = SipURI(uri.host, uri.user, None, uri.port, uri.params, (), uri.scheme)
        self._refer_in = incoming
        cseq = request.cseq
        self._subscription = cseq.seq if cseq is not None else 0
        logger.info("sip_call_id=%s REFER received: to %s", self.call.call_id, bare)
        self.call._emit(ReferReceived(str(bare), replaces, request.headers.get("Referred-By") or ""))
        return None

    def answer(self, status: int, reason: str | None = None) -> None:
        """Answer their pending REFER: 202 Accepted (then :meth:`notify` follows) or a refusal."""
        incoming, dialog = self._refer_in, self.call.dialog
        if incoming is None or dialog is None:
            raise ValueError(f"call {self.call.call_id}: no REFER to answer")
        if not (status == 202 or 300 <= status <= 699):
            raise ValueError(f"a REFER is answered 202 or 3xx-6xx, not {status!r}")
        self._refer_in = None
        incoming.respond(dialog.respond(incoming.request, status, reason))
        self._notifying = status == 202

    async def notify(self, status: int, reason: str) -> None:
        """NOTIFY the referrer how the referred call goes (RFC 3515 §2.4.4); a final status ends it."""
        call, seq = self.call, self._subscription
        dialog = call.dialog
        if not self._notifying or seq is None or dialog is None or call.ended:
            return
        final = status >= 200
        if final:
            self._notifying = False
        request = dialog.create_request(
            "NOTIFY",
            body=sipfrag(status, reason),
            content_type=SIPFRAG_CONTENT_TYPE,
            headers=notify_headers(seq, final),
        )
        try:
            response, _ = await call._send(request)
        except (SIPError, OSError) as exc:
            logger.info("sip_call_id=%s NOTIFY failed: %s", call.call_id, exc)
            return
        logger.info("sip_call_id=%s NOTIFY %d answered %d", call.call_id, status, response.status)

    def on_request(self, incoming: IncomingRequest) -> None:
        """REFER or NOTIFY in the dialog (the dialog accepted its CSeq already)."""
        call, dialog = self.call, self.call.dialog
        assert dialog is not None
        request = incoming.request
        if not call.transfers:
            allow = tuple(m for m in dialog.endpoint.allow if m not in TRANSFER_METHODS)
            incoming.respond(dialog.respond(request, 405, headers=(("Allow", ", ".join(allow)),)))
            return
        outcome = self._on_refer(incoming) if request.method == "REFER" else self._on_notify(incoming)
        if outcome is not None:
            status, reason = outcome
            incoming.respond(dialog.respond(request, status, reason))
