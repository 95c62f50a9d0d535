"""A call we receive: their INVITE, our answers, their CANCEL and ACK (RFC 3261 §13.3, §9.2).

The transaction layer has already sent 100 Trying when the UA creates the
:class:`IncomingCall` (with its UAS dialog, §12.1.1). The call layer then rings it
(:meth:`~IncomingCall.ring`, 180), offers early media (:meth:`~IncomingCall.progress`, 183 with
SDP), answers (:meth:`~IncomingCall.answer`, 200 with SDP, retransmitted until the ACK,
§13.3.1.4: the ACK gives :class:`Confirmed`; no ACK within 64*T1 gives a BYE and
``Failed(408)``) or refuses it (:meth:`~IncomingCall.reject`, any 3xx-6xx). A CANCEL from the
caller before the answer gets 487 for the INVITE (the layer answered the CANCEL 200) and a
:class:`Cancelled` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transports.transport import Source
from gateway.sip.useragent import dialog_sources
from gateway.sip.useragent.ua_calls import SDP, Call, CallError, CallState
from gateway.sip.useragent.ua_events import Cancelled, Confirmed, Failed
from gateway.sip.useragent.ua_reliable import ReliableResponder
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.dialog import Dialog
from sipcore.dialogs.offer_answer import OaEvent, OaState
from sipcore.dialogs.reliable import wants_reliable
from sipcore.dialogs.session_timer import SessionTimer
from sipcore.syntax.headers import NameAddr
from sipcore.syntax.message import Request, Response
from sipcore.syntax.reason import ReasonValue, parse_reasons
from sipcore.syntax.uri import URI

if TYPE_CHECKING:
    from gateway.sip.useragent.ua import UserAgent

__all__ = ["IncomingCall"]

logger = logging.getLogger(__name__)

_UNANSWERED = (CallState.INCOMING, CallState.EARLY)


class IncomingCall(Call):
    """An INVITE for us, delivered by :meth:`UserAgent.incoming` or ``on_incoming_call``."""

    def __init__(
        self, ua: UserAgent, incoming: IncomingRequest, dialog: Dialog, digest: DigestClient | None
    ) -> None:
        super().__init__(ua, incoming.request.call_id or "", CallState.INCOMING, digest)
        self.incoming = incoming
        self.dialog = dialog
        dialog_sources.remember(self.peer_hosts, incoming.source.address)
        self.local_tag = dialog.id.local_tag
        self.remote_sdp = incoming.request.body.decode("utf-8", "replace")
        self.learn_allow(incoming.request)
        self.replaces: Call | None = None  # the call this INVITE takes over (RFC 3891, ua_replaces)
        if incoming.request.body:
            self.offer_event(OaEvent.RECV_OFFER)
        # RFC 3262 §3: our 180/183 go reliably when the caller requires it (or supports it, if we choose).
        self.reliable: ReliableResponder | None = None
        if wants_reliable(incoming.request, when_supported=ua.settings.prack_when_supported):
            self.reliable = ReliableResponder(self)

    # --- what the caller sent --------------------------------------------------------------------
    @property
    def request(self) -> Request:
        return self.incoming.request

    @property
    def caller(self) -> NameAddr | None:
        """The From of the INVITE."""
        return self.request.from_

    @property
    def callee(self) -> NameAddr | None:
        """The To of the INVITE."""
        return self.request.to

    @property
    def request_uri(self) -> URI:
        return self.request.uri

    @property
    def offer(self) -> str:
        """The SDP offer of the INVITE (empty when it had none)."""
        return self.remote_sdp

    @property
    def source(self) -> Source:
        return self.incoming.source

    # --- answering ---------------------------------------------------------------------------------
    def _unanswered(self, action: str) -> Dialog:
        self._need(action, *_UNANSWERED)
        if self.incoming.cancelled:
            raise CallError(f"call {self.call_id}: cannot {action}: the caller cancelled")
        assert self.dialog is not None
        return self.dialog

    def ring(self, headers: Sequence[tuple[str, str]] = ()) -> None:
        """180 Ringing (with ``headers``: Recv-Info, RFC 6086 §5.2.2)."""
        dialog = self._unanswered("ring")
        self._provisional(dialog.respond(self.request, 180, headers=headers))
        self._set_state(CallState.EARLY)

    def _provisional(self, response: Response) -> None:
        if self.reliable is None:
            self.incoming.respond(response)
            return
        if response.body:  # RFC 3262 §5: a reliable 1xx carries an answer or, after a late offer, an offer
            answering = self.offers.state is OaState.REMOTE_OFFER
            self.offer_event(OaEvent.SEND_ANSWER if answering else OaEvent.SEND_OFFER)
        self.reliable.send(response)

    def progress(self, sdp: str) -> None:
        """183 Session Progress with SDP (early media)."""
        dialog = self._unanswered("send 183")
        self._provisional(dialog.respond(self.request, 183, body=sdp.encode(), content_type=SDP))
        self.local_sdp = sdp
        self._set_state(CallState.EARLY)

    def answer(self, sdp: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """200 OK with the SDP answer (and ``headers``), retransmitted until the ACK (RFC 3261 §13.3.1.4)."""
        self._unanswered("answer")
        reliable = self.reliable
        if reliable is not None and not reliable.may_send_2xx():
            # RFC 3262 §3: no 2xx while a reliable 1xx with SDP waits for its PRACK; it goes with the PRACK.
            logger.info("sip_call_id=%s 200 waits for the PRACK of our reliable 1xx", self.call_id)
            reliable.deferred_2xx = lambda: self._answer_now(sdp, headers)
            return
        self._answer_now(sdp, headers)

    def _answer_now(self, sdp: str, extra: Sequence[tuple[str, str]] = ()) -> None:
        if self._ended or self.state not in _UNANSWERED or self.incoming.cancelled:
            return
        dialog = self._unanswered("answer")
        if self.reliable is not None:
            self.reliable.finish()
        if self.offers.state is OaState.REMOTE_OFFER:
            self.offer_event(OaEvent.SEND_ANSWER)
        elif not self.remote_sdp and self.offers.state is OaState.STABLE and not self.local_sdp:
            self.offer_event(OaEvent.SEND_OFFER)  # a late offer: ours in the 200, the answer in the ACK
        timer = self.ua.session_timer_for(self.request)
        headers = timer.headers(require=timer.refresher == "uac") if isinstance(timer, SessionTimer) else ()
        response = dialog.respond(
            self.request, 200, body=sdp.encode(), content_type=SDP, headers=(*headers, *extra)
        )
        self.local_sdp = sdp
        acked = self.incoming.respond_until_ack(response)
        self._set_state(CallState.ANSWERED)
        self._spawn(self._await_ack(acked))
        if isinstance(timer, SessionTimer):
            self.start_session_timer(timer)

    async def _await_ack(self, acked: asyncio.Future[bool]) -> None:
        try:
            if await acked:
                return
        except asyncio.CancelledError:
            return
        if self._ended:
            return
        logger.info("sip_call_id=%s no ACK for our 200: BYE", self.call_id)
        self._set_state(CallState.CONFIRMED)
        dialog = self.dialog
        assert dialog is not None
        try:
            await self._send(dialog.create_request("BYE"))
        finally:
            self._emit(Failed(408, "No ACK"))

    def reject(
        self, status: int = 486, reason: str | None = None, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Refuse the call with a 3xx-6xx (404, 480, 486, 488, 603...) and extra ``headers`` (Warning)."""
        if not 300 <= status <= 699:
            raise ValueError(f"a rejection needs a 3xx-6xx status, not {status!r}")
        dialog = self._unanswered("reject")
        if self.reliable is not None:
            self.reliable.finish()
        response = dialog.respond(self.request, status, reason, headers=headers)
        self.incoming.respond(response)
        self._emit(Failed(status, response.reason))

    # --- what the caller does ----------------------------------------------------------------------
    def on_cancel(self, cancel: Request | None = None) -> None:
        """The layer answered the caller's CANCEL 200: end the INVITE with 487 (RFC 3261 §9.2); the
        CANCEL's Reason (RFC 3326) goes with the event."""
        if self.state not in _UNANSWERED or self.dialog is None:
            return
        if self.reliable is not None:
            self.reliable.finish()
        self.incoming.respond(self.dialog.respond(self.request, 487))
        self._emit(Cancelled(parse_reasons(cancel.headers.get_all("Reason")) if cancel is not None else ()))

    def on_ack(self, ack: Request) -> None:
        super().on_ack(ack)
        if (
            self.state is CallState.ANSWERED
            and ack.cseq is not None
            and ack.cseq.seq == self.dialog_invite_cseq
        ):
            self._set_state(CallState.CONFIRMED)
            if self.offers.state is OaState.LOCAL_OFFER:
                self.offer_event(OaEvent.RECV_ANSWER if ack.body else OaEvent.REJECTED)
            self._emit(Confirmed(ack.body.decode("utf-8", "replace")))

    @property
    def dialog_invite_cseq(self) -> int:
        cseq = self.request.cseq
        return cseq.seq if cseq is not None else 0

    def on_prack(self, incoming: IncomingRequest) -> None:
        """A PRACK (RFC 3262 §3): matched by RAck against our reliable 1xx, else 481."""
        if self.reliable is None:
            super().on_prack(incoming)
        else:
            self.reliable.prack(incoming)

    def no_prack(self, status: int, reason: str) -> None:
        """64*T1 without the PRACK of our reliable 1xx: the INVITE fails with a 5xx (RFC 3262 §3)."""
        if self._ended or self.state not in _UNANSWERED or self.incoming.cancelled:
            return
        logger.info("sip_call_id=%s no PRACK: %d %s", self.call_id, status, reason)
        self.reject(status, reason)

    def _on_bye(self, reasons: tuple[ReasonValue, ...] = ()) -> None:
        if self.reliable is not None:
            self.reliable.finish()
        if self.incoming.final is None and self.dialog is not None:
            self.incoming.respond(self.dialog.respond(self.request, 487))  # BYE on an early dialog
        super()._on_bye(reasons)

    def _stop_waiting_for_ack(self) -> None:
        if self.incoming.ack_wait is not None:
            self.incoming.ack_wait.cancel()

    async def close(self) -> None:
        if self._ended:
            return
        if self.state in _UNANSWERED and not self.incoming.cancelled:
            self.reject(503, "Service Unavailable")
        elif self.state in (CallState.ANSWERED, CallState.CONFIRMED):
            with contextlib.suppress(CallError):
                await self.bye()
        if not self._ended:
            self._emit(Failed(503, "User Agent Closing"))
