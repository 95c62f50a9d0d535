"""What a call of the user agent tells the call layer, and what both kinds of call share.

Each call (an :class:`~gateway.sip.useragent.outgoing.OutgoingCall` we place, an
:class:`~gateway.sip.useragent.incoming.IncomingCall` we answer) reports what happens as frozen event
dataclasses on a queue, read with ``async for event in call.events()``; the iteration ends after
a terminal event (:data:`TERMINAL`: :class:`Failed`, :class:`Cancelled`, :class:`Bye`).

In an established dialog both kinds behave alike (RFC 3261 §12, §14, §15, RFC 6086): INFO in
either direction is answered 200 and delivered as :class:`InfoReceived`, and so is a text/plain MESSAGE
(RFC 3428 §4: chat inside the call's dialog) as :class:`MessageReceived`, unless the call's owner's
``message_gate`` refuses it (486 with Retry-After: a rate limit, shown to nobody); a re-INVITE is
delivered as :class:`ReinviteReceived` and answered with :meth:`Call.answer_reinvite` (or refused with
:meth:`Call.reject_reinvite`), or 491 while ours is in progress (RFC 3261 §14.2); a BYE is answered 200
and ends the call. An UPDATE (RFC 3311, :mod:`gateway.sip.useragent.ua_update`) with an offer is
delivered and answered like a re-INVITE (its 200 carries the answer, no ACK follows); one without is a
session refresh. Each call tracks its dialog's offer/answer state (:class:`~sipcore.dialogs.offer_answer.OfferAnswer`)
for RFC 3311 §5.2's 491 and 500. PRACK (RFC 3262) is the incoming call's (:mod:`gateway.sip.useragent.ua_reliable`). Requests we
send in the dialog that a proxy or the far end challenges (401/407) are sent again with credentials,
and the dialog's local CSeq follows the re-sent request (RFC 3261 §22.2), but only when the challenged
request went to the PBX (:mod:`gateway.sip.useragent.pbx_binding`): a far end must not obtain them.

States are :class:`CallState`; every change goes through ``_set_state``, which logs ``sip_call_id=<Call-ID>
OLD -> NEW``; a method called in a state that does not allow it raises :class:`CallError` naming both.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gateway.sip.transactions.stats import retransmission
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent import dialog_sources, ua_late_offer, ua_update
from gateway.sip.useragent.ua_events import (
    TERMINAL,
    Bye,
    CallEvent,
    InfoReceived,
    MessageReceived,
    ReinviteAcked,
    ReinviteReceived,
    ReinviteResult,
    set_direction,
)
from gateway.sip.useragent.ua_transfer import TRANSFER_METHODS, Transfers
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.dialog import Dialog, DialogState, Role
from sipcore.dialogs.inspection import refuse_body, refuse_method
from sipcore.dialogs.offer_answer import TABLE as OFFER_ANSWER
from sipcore.dialogs.offer_answer import OaEvent, OfferAnswer
from sipcore.dialogs.session_timer import SessionTimer
from sipcore.errors import DigestError, SIPError
from sipcore.location.routing import Target
from sipcore.syntax.message import Request, Response
from sipcore.syntax.reason import ReasonValue, parse_reasons

if TYPE_CHECKING:
    from gateway.sip.useragent.ua import UserAgent

__all__ = ["ACCEPT", "Call", "CallError", "CallState", "MessageGate"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"
ACCEPT = ("application/sdp", "application/dtmf-relay", "application/trickle-ice-sdpfrag")
MAX_AUTH_RETRIES = 2  # a challenge answered twice for one request is a refusal, not a loop
TEXT = "text/plain"
MAX_TEXT_BYTES = 8192  # a MESSAGE body in a dialog (RFC 3428 §7 asks for less over UDP; TCP/TLS carry more)
# A MESSAGE's sender (From URI, no parameters) -> None when it may be delivered, else the whole seconds
# before it might be (its owner's rate limit: gateway/runtime/message_rate.py)
MessageGate = Callable[[str], "float | None"]


class CallError(SIPError):
    """The call layer asked for something the call cannot do in its state."""

    status = None
    phrase = "Call Error"


class CallState(enum.Enum):
    CALLING = "calling"  # our INVITE sent, no provisional response with a To tag yet
    INCOMING = "incoming"  # their INVITE received, not answered
    EARLY = "early"  # an early dialog (18x)
    ANSWERED = "answered"  # we sent 200 to their INVITE; waiting for the ACK
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


class Call:
    """What outgoing and incoming calls share: events, the dialog, requests inside it."""

    # Whether an offer in UPDATE in the early dialog is delivered (RFC 3311 §5.1; ua_update): only in
    # the early dialog of an INVITE we sent, whose offer the 18x answered (the PBX moves early media).
    early_offers = False

    @property
    def early_update_allowed(self) -> bool:
        """Whether we may send an offer in UPDATE in the early dialog (RFC 3311 §5.1): OutgoingCall."""
        return False

    @property
    def early_info_allowed(self) -> bool:
        """Whether we may send INFO in the early dialog (RFC 8840 §4.1): OutgoingCall."""
        return False

    def __init__(self, ua: UserAgent, call_id: str, state: CallState, digest: DigestClient | None) -> None:
        self.ua = ua
        self.call_id = call_id
        self.local_tag = ""  # our tag in the dialog (From tag of ours, To tag of theirs)
        self.state = state
        self.dialog: Dialog | None = None
        self.local_sdp = ""
        self.remote_sdp = ""
        self._digest = digest
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._ended = False
        self._reinvite_in: IncomingRequest | None = None
        self._reinvite_out = False
        self._reinvite_ack: int | None = None  # CSeq of their re-INVITE whose 2xx awaits its ACK
        self.session_timer: SessionTimer | None = None  # RFC 4028, once agreed
        self._timer_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent_acks: dict[int, Request] = {}
        # Where in-dialog requests go instead of the remote target's address: the WebSocket flow of a
        # browser (its Contact host is *.invalid, RFC 7118 §5), None for the usual routing.
        self.next_hop: Target | None = None
        self.peer_hosts: set[str] = set()  # where its messages went and came from (dialog_sources)
        self.offers = OfferAnswer(call_id)  # RFC 3264 §4, for RFC 3311 §5.2
        self.peer_allows: frozenset[str] = frozenset()  # the Allow of their INVITE or 2xx (upper-case)
        # REFER and NOTIFY (RFC 3515) are handled only for owners that transfer calls (gateway/runtime)
        self.transfers = False
        self.transfer = Transfers(self)
        # Info Packages we named in Recv-Info (RFC 6086 §5.2.2): trickle-ice in a pass-through call
        self.info_packages: frozenset[str] = frozenset()
        self.peer_info_packages: frozenset[str] = frozenset()  # theirs (RFC 6086 §4.2.1: only those we send)
        self.message_gate: MessageGate | None = None  # whether a MESSAGE in the dialog may be delivered

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.state.name}>"

    # --- state and events --------------------------------------------------------------------------
    def _set_state(self, new: CallState) -> None:
        if new is self.state:
            return
        logger.debug("sip_call_id=%s %s -> %s", self.call_id, self.state.name, new.name)
        self.state = new

    def offer_event(self, event: OaEvent) -> None:
        """Record an offer, answer or refusal; one out of turn (a peer's odd sequence) is only logged."""
        if (self.offers.state, event) in OFFER_ANSWER:
            self.offers.handle(event)
        else:
            logger.debug(
                "sip_call_id=%s offer/answer %s ignored in %s", self.call_id, event.name, self.offers.state
            )

    def learn_allow(self, message: Request | Response) -> None:
        """Remember the methods the far end allows (RFC 3261 §20.5), from its INVITE or 2xx, and the
        Info Packages it takes (its Recv-Info, RFC 6086 §5.2.2; an empty one takes none)."""
        packages = message.headers.get_all("Recv-Info")
        if packages:
            self.peer_info_packages = frozenset(
                p.strip().lower() for v in packages for p in v.split(",") if p.strip()
            )
        values = message.headers.get_all("Allow")
        if values:
            self.peer_allows = frozenset(m.strip().upper() for v in values for m in v.split(",") if m.strip())

    def _need(self, action: str, *states: CallState) -> None:
        if self.state not in states:
            raise CallError(f"call {self.call_id}: cannot {action} in state {self.state.name!r}")

    def _emit(self, event: CallEvent) -> None:
        if self._ended:
            return
        logger.debug("sip_call_id=%s event %r", self.call_id, event)
        if isinstance(event, TERMINAL):
            self._ended = True
            self.stop_session_timer()
            self._set_state(CallState.TERMINATED)
            self.ua._forget(self)
        self._events.put_nowait(event)

    @property
    def ended(self) -> bool:
        return self._ended

    async def events(self) -> AsyncIterator[CallEvent]:
        """The call's events, in order, until (and including) the terminal one."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, TERMINAL):
                return

    async def next_event(self, timeout: float | None = None) -> CallEvent:
        """The next event (TimeoutError after ``timeout`` seconds)."""
        return await asyncio.wait_for(self._events.get(), timeout)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as one of the call's tasks (errors logged, awaited on close)."""
        self._spawn(coro)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("sip_call_id=%s task failed", self.call_id, exc_info=task.exception())

    def handover(self) -> dict[str, Any]:
        """What another instance needs to carry this established call on (issue 34; ``UserAgent.adopt``),
        as plain JSON: the dialog (RFC 3261 §12), SDPs, the far end's capabilities, the session timer
        (RFC 4028). No credentials, only whether the call had some; no WebSocket flow (it cannot move)."""
        dialog, timer, hop = self._established(), self.session_timer, self.next_hop
        return {
            "version": 1,
            "kind": "outgoing" if dialog.role is Role.UAC else "incoming",  # OutgoingCall: we sent the INVITE
            "call_id": self.call_id,
            "local_tag": self.local_tag,
            "dialog": dialog.to_dict(),
            "local_sdp": self.local_sdp,
            "remote_sdp": self.remote_sdp,
            "peer_allows": sorted(self.peer_allows),
            "info_packages": sorted(self.info_packages),
            "peer_info_packages": sorted(self.peer_info_packages),
            "peer_hosts": sorted(self.peer_hosts),
            "transfers": self.transfers,
            "digest": self._digest is not None,
            "session_timer": asdict(timer) if timer is not None else None,
            "next_hop": asdict(hop) if hop is not None and hop.transport not in ("WS", "WSS") else None,
        }

    # --- requests we send in the dialog --------------------------------------------------------------
    def _established(self) -> Dialog:
        dialog = self.dialog
        if dialog is None or self.state is not CallState.CONFIRMED:
            raise CallError(f"call {self.call_id}: no confirmed dialog in state {self.state.name!r}")
        return dialog

    async def _send(self, request: Request) -> tuple[Response, Request]:
        """Send an in-dialog request; answer 401/407 with credentials (CSeq + 1, the dialog's
        local CSeq kept in step, RFC 3261 §22.2). Returns the final response and the request
        it answers (the last one sent)."""
        dialog = self.dialog
        assert dialog is not None
        for attempt in range(MAX_AUTH_RETRIES + 1):
            handle = await self.ua.layer.request(request, self.next_hop)
            dialog_sources.remember(self.peer_hosts, handle.destination)
            final = await handle.final_response()
            if final.cseq is not None and final.cseq.method == request.method:
                dialog.receive_response(final)
            if final.status not in (401, 407) or self._digest is None or attempt == MAX_AUTH_RETRIES:
                return final, request
            refusal = self.ua.pbx_binding.refusal(handle.destination, final)
            if refusal is not None:
                logger.warning(
                    "sip_call_id=%s %s: credentials withheld: %s", self.call_id, request.method, refusal
                )
                return final, request
            try:
                retry = self._digest.authorize(request, final)
            except DigestError as exc:
                logger.info("sip_call_id=%s %s not authorized: %s", self.call_id, request.method, exc.detail)
                return final, request
            if dialog.state is DialogState.TERMINATED:
                dialog.local_cseq = retry.cseq.seq if retry.cseq is not None else dialog.local_cseq
            else:
                dialog.record_request(retry)
            request = retry
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_in_dialog(self, request: Request) -> tuple[Response, Request]:
        """Send a request built by the dialog (UPDATE, PRACK...); see :meth:`_send`."""
        return await self._send(request)

    async def info(
        self, content_type: str, body: bytes | str, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        """Send INFO (RFC 6086) with any body: application/dtmf-relay, trickle-ice-sdpfrag...
        (``headers``: an Info-Package, RFC 6086 §4.2.1); returns the final response. In the early
        dialog too when ``early_info_allowed`` (trickle ICE, RFC 8840 §4.1)."""
        dialog = self.dialog if self.early_info_allowed else self._established()
        assert dialog is not None
        data = body.encode() if isinstance(body, str) else body
        request = dialog.create_request("INFO", body=data, content_type=content_type, headers=headers)
        final, _ = await self._send(request)
        return final

    async def message(self, text: str) -> Response:
        """Send a text/plain MESSAGE in the dialog (RFC 3428 §4: chat during the call); the final response."""
        dialog = self._established()
        request = dialog.create_request("MESSAGE", body=text.encode(), content_type=TEXT)
        final, _ = await self._send(request)
        return final

    async def reinvite(self, sdp: str) -> ReinviteResult:
        """Send a re-INVITE with a new offer (RFC 3261 §14.1) and ACK its 2xx; in an UPDATE instead
        (RFC 3311 §5.1) when the UA's ``reoffer_with_update`` is set and the far end allows UPDATE, and
        always in the early dialog, where only UPDATE can carry an offer (``early_update_allowed``)."""
        early = self.state is CallState.EARLY and self.dialog is not None
        if early and not self.early_update_allowed:
            raise CallError(
                f"call {self.call_id}: no offer in the early dialog without a reliable 18x answer "
                "and a far end that allows UPDATE (RFC 3311 §5.1)"
            )
        dialog = self.dialog if early else self._established()
        assert dialog is not None
        if self._reinvite_out or self._reinvite_in is not None:
            raise CallError(f"call {self.call_id}: a re-INVITE is already in progress")
        self._reinvite_out = True
        try:
            if early or (self.ua.settings.reoffer_with_update and "UPDATE" in self.peer_allows):
                return await ua_update.offer(self, sdp)
            timer = self.session_timer
            headers = timer.request_headers() if timer else ()
            request = dialog.create_request("INVITE", body=sdp.encode(), content_type=SDP, headers=headers)
            self.offer_event(OaEvent.SEND_OFFER)
            final, sent = await self._send(request)
            self.offer_event(OaEvent.RECV_ANSWER if 200 <= final.status < 300 else OaEvent.REJECTED)
            if 200 <= final.status < 300:
                await self._ack(dialog.ack(sent))
                self.local_sdp = sdp
                self.remote_sdp = _text(final.body)
                self.start_session_timer(None)  # a 2xx re-INVITE refreshes the session (RFC 4028 §10)
            return ReinviteResult(final.status, final.reason, _text(final.body))
        finally:
            self._reinvite_out = False

    async def reinvite_offerless(self, answer: Callable[[str], Awaitable[str | None]]) -> ReinviteResult:
        """A re-INVITE without an offer, ``answer`` answering the 2xx's in our ACK (ua_late_offer.py)."""
        return await ua_late_offer.reinvite(self, answer)

    async def _ack(self, ack: Request) -> None:
        """Send the ACK of a 2xx and keep it, as sent, for the 2xx's retransmissions."""
        sent = await self.ua.layer.send_stateless(ack, self.next_hop)
        if isinstance(sent, Request) and sent.cseq is not None:
            self._sent_acks = {sent.cseq.seq: sent}

    async def hold(self, sdp: str | None = None) -> ReinviteResult:
        """Put the far end on hold (RFC 3264 §8.4): re-INVITE with ``sdp`` or our last SDP set
        to ``a=sendonly``."""
        return await self.reinvite(sdp or set_direction(self.local_sdp, "sendonly"))

    async def resume(self, sdp: str | None = None) -> ReinviteResult:
        """Take the far end off hold: re-INVITE with ``a=sendrecv``."""
        return await self.reinvite(sdp or set_direction(self.local_sdp, "sendrecv"))

    def release(self) -> None:
        """Forget the call without a BYE: another instance carries its dialog on (a drain's handover)."""
        if not self._ended:
            self._emit(Bye(by_remote=False))

    async def bye(self, reason: ReasonValue | None = None) -> None:
        """End the established call with BYE (RFC 3261 §15.1.1), saying why in a Reason header when
        given (RFC 3326); emits ``Bye(by_remote=False)``."""
        dialog = self.dialog
        if self._ended or dialog is None or dialog.state is not DialogState.CONFIRMED:
            raise CallError(f"call {self.call_id}: cannot send BYE in state {self.state.name!r}")
        self._stop_waiting_for_ack()
        request = dialog.create_request("BYE", headers=[("Reason", str(reason))] if reason else ())
        final, _ = await self._send(request)
        self._emit(Bye(by_remote=False, status=final.status, reasons=(reason,) if reason else ()))

    def _stop_waiting_for_ack(self) -> None:
        """Hook: an incoming call stops its 2xx retransmission."""

    # --- session timers (RFC 4028) --------------------------------------------------------------------
    def start_session_timer(self, timer: SessionTimer | None) -> None:
        """Run ``timer`` (or keep the current one: a refresh restarts it): as the refresher, re-INVITE at
        half the interval; else BYE when no refresh came by the deadline (RFC 4028 §10)."""
        if timer is None:
            timer = self.session_timer
        if timer is None or self._ended:
            return
        self.session_timer = timer
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        loop = asyncio.get_running_loop()
        if timer.we_refresh:
            self._timer_handle = loop.call_later(timer.refresh_after, lambda: self._spawn(self._refresh()))
        else:
            self._timer_handle = loop.call_later(timer.expiry_deadline, lambda: self._spawn(self._expired()))

    def stop_session_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None

    async def _refresh(self) -> None:
        if self._ended or self.state is not CallState.CONFIRMED:
            return
        if self._reinvite_out or self._reinvite_in is not None:  # a re-INVITE is under way: soon again
            self._timer_handle = asyncio.get_running_loop().call_later(
                2.0, lambda: self._spawn(self._refresh())
            )
            return
        logger.info("sip_call_id=%s session refresh (RFC 4028)", self.call_id)
        try:
            if "UPDATE" in self.peer_allows:  # RFC 4028 §7.4: UPDATE, no offer, when the peer allows it
                result = await ua_update.refresh(self)
            else:
                result = await self.reinvite(self.local_sdp)
        except (SIPError, OSError) as exc:
            logger.info("sip_call_id=%s session refresh failed: %s", self.call_id, exc)
            return
        if result.status in (408, 481):
            logger.info("sip_call_id=%s session refresh answered %d: BYE", self.call_id, result.status)
            await self._bye_quietly()

    async def _expired(self) -> None:
        if self._ended or self.state is not CallState.CONFIRMED:
            return
        logger.info("sip_call_id=%s no session refresh in time (RFC 4028 §10): BYE", self.call_id)
        await self._bye_quietly()

    async def _bye_quietly(self) -> None:
        try:
            await self.bye()
        except (SIPError, OSError) as exc:
            logger.info("sip_call_id=%s BYE failed: %s", self.call_id, exc)
            self._emit(Bye(by_remote=False, status=408))

    # --- requests received in the dialog ------------------------------------------------------------
    def answer_reinvite(self, sdp: str) -> None:
        """Answer the pending re-INVITE with 200 and ``sdp``, retransmitted until its ACK."""
        incoming, dialog = self._reinvite_in, self.dialog
        if incoming is None or dialog is None:
            raise CallError(f"call {self.call_id}: no re-INVITE to answer")
        self._reinvite_in = None
        timer = self.session_timer
        headers = timer.headers(require=not timer.we_refresh) if timer else ()
        response = dialog.respond(incoming.request, 200, body=sdp.encode(), content_type=SDP, headers=headers)
        self.local_sdp = sdp
        self.start_session_timer(None)  # their re-INVITE refreshed the session
        offered = bool(incoming.request.body)
        self.offer_event(OaEvent.SEND_ANSWER if offered else OaEvent.SEND_OFFER)
        if incoming.request.method == "UPDATE":  # RFC 3311 §5.2: the answer in the 200, no ACK
            incoming.respond(response)
            return
        cseq = incoming.request.cseq
        self._reinvite_ack = cseq.seq if cseq is not None else None
        self._spawn(self._await_reinvite_ack(incoming.respond_until_ack(response)))

    async def _await_reinvite_ack(self, acked: asyncio.Future[bool]) -> None:
        """No ACK for the 2xx to a re-INVITE within 64*T1: BYE, as for the initial INVITE (RFC 3261
        §14.2, §13.3.1.4)."""
        try:
            if await acked:
                return
        except asyncio.CancelledError:
            return
        if self._ended or self.state is not CallState.CONFIRMED:
            return
        logger.info("sip_call_id=%s no ACK for our 200 to the re-INVITE: BYE", self.call_id)
        self._reinvite_ack = None
        try:
            await self.bye()
        except (SIPError, OSError) as exc:
            logger.info("sip_call_id=%s BYE failed: %s", self.call_id, exc)
            self._emit(Bye(by_remote=False, status=408))

    def reject_reinvite(self, status: int = 488, reason: str | None = None) -> None:
        """Refuse the pending re-INVITE (488 Not Acceptable Here by default); the call goes on."""
        incoming, dialog = self._reinvite_in, self.dialog
        if incoming is None or dialog is None:
            raise CallError(f"call {self.call_id}: no re-INVITE to reject")
        if not 300 <= status <= 699:
            raise ValueError(f"a rejection needs a 3xx-6xx status, not {status!r}")
        self._reinvite_in = None
        self.offer_event(OaEvent.REJECTED)
        incoming.respond(dialog.respond(incoming.request, status, reason))

    def on_request(self, incoming: IncomingRequest) -> None:
        """A request in our dialog (the UA matched it by dialog id)."""
        request, dialog = incoming.request, self.dialog
        assert dialog is not None
        error = dialog.receive_request(request)
        if error is not None:
            incoming.respond(error)
            return
        method = request.method
        # only what this dialog's owner handles, its endpoint's Allow (RFC 3261 §20.5): a SIP library over
        # WebSocket (gateway/websip) is not offered the methods only a PBX's dialogs take
        if (refusal := refuse_method(method, dialog.endpoint.allow)) is not None:
            incoming.respond(dialog.respond(request, refusal[0], headers=refusal[1]))
        elif method == "BYE":
            incoming.respond(dialog.respond(request, 200))
            self._on_bye(parse_reasons(request.headers.get_all("Reason")))
        elif method == "INFO" and (refusal := self.ua.info_refusal(request, self.info_packages)) is not None:
            incoming.respond(dialog.respond(request, refusal[0], headers=refusal[1]))  # RFC 6086 §4.2.2
        elif method == "INFO":
            incoming.respond(dialog.respond(request, 200))
            self._emit(InfoReceived(request.headers.get("Content-Type") or "", request.body))
        elif method == "MESSAGE":
            self._on_message(incoming)
        elif method == "INVITE" and (refusal := refuse_body(request, ("application/sdp",))) is not None:
            incoming.respond(dialog.respond(request, refusal[0], headers=refusal[1]))  # RFC 3261 §8.2.3
        elif method == "INVITE" and self._reinvite_out:
            incoming.respond(dialog.respond(request, 491))  # ours is in progress: glare
        elif method == "INVITE":
            self._reinvite_in = incoming
            if request.body:  # none: they ask for our offer (RFC 3261 §14.2), the answer comes in the ACK
                self.remote_sdp = _text(request.body)
                self.offer_event(OaEvent.RECV_OFFER)
            self._emit(ReinviteReceived(_text(request.body)))
        elif method == "OPTIONS":
            incoming.respond(dialog.respond(request, 200, headers=self.ua.capabilities()))
        elif method == "UPDATE":
            ua_update.receive(self, incoming)
        elif method == "PRACK":
            self.on_prack(incoming)
        elif method in TRANSFER_METHODS:
            self.transfer.on_request(incoming)
        else:
            status, headers = refuse_method(method, dialog.endpoint.allow) or (405, ())
            incoming.respond(dialog.respond(request, status, headers=headers))

    def _on_message(self, incoming: IncomingRequest) -> None:
        """A MESSAGE in the dialog (RFC 3428 §4): text/plain up to ``MAX_TEXT_BYTES`` in UTF-8 is answered
        200 and delivered; another type gets 415 with Accept, a larger body 413, bytes that are not UTF-8
        400 (§7: the UAS answers for the content it cannot render); one over ``message_gate``'s rate 486
        Busy Here with Retry-After (RFC 3261 §21.4.24, §20.33), delivered to nobody."""
        request, dialog = incoming.request, self.dialog
        assert dialog is not None
        refusal = refuse_body(request, (TEXT,))
        if refusal is not None:
            incoming.respond(dialog.respond(request, refusal[0], headers=refusal[1]))
            return
        if len(request.body) > MAX_TEXT_BYTES:
            incoming.respond(dialog.respond(request, 413))
            return
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            incoming.respond(dialog.respond(request, 400, "Body Is Not UTF-8"))
            return
        sender = str(request.from_.uri).split(";", 1)[0] if request.from_ is not None else ""
        wait = self.message_gate(sender) if text and self.message_gate is not None else None
        if wait is not None:  # a flood: 486 with Retry-After, as out of dialog (runtime/message_rate.py)
            logger.debug("sip_call_id=%s MESSAGE in the dialog refused: over its rate", self.call_id)
            retry = (("Retry-After", str(int(wait))),)
            incoming.respond(dialog.respond(request, 486, "Busy Here", headers=retry))
            return
        incoming.respond(dialog.respond(request, 200))
        if text:
            self._emit(MessageReceived(text))

    def on_prack(self, incoming: IncomingRequest) -> None:
        """A PRACK in the dialog: only an incoming call sends reliable 1xx; here it matches nothing
        (RFC 3262 §3: 481)."""
        assert self.dialog is not None
        incoming.respond(self.dialog.respond(incoming.request, 481))

    def take_update(self, incoming: IncomingRequest) -> None:
        """Deliver an UPDATE carrying an offer (already judged by ua_update) as a re-INVITE is."""
        self._reinvite_in = incoming
        self.remote_sdp = _text(incoming.request.body)
        self.offer_event(OaEvent.RECV_OFFER)
        self._emit(ReinviteReceived(self.remote_sdp))

    @property
    def offer_pending(self) -> tuple[bool, bool]:
        """(ours, theirs): a re-INVITE of ours out, one of theirs unanswered (RFC 3311 §5.2)."""
        return self._reinvite_out, self._reinvite_in is not None

    def _on_bye(self, reasons: tuple[ReasonValue, ...] = ()) -> None:
        self._stop_waiting_for_ack()
        self.stop_session_timer()
        self._emit(Bye(by_remote=True, reasons=reasons))

    def on_ack(self, ack: Request) -> None:
        """An ACK in our dialog: the initial 2xx's (incoming calls) or a re-INVITE's."""
        if self._reinvite_ack is not None and ack.cseq is not None and ack.cseq.seq == self._reinvite_ack:
            self._reinvite_ack = None
            self.offer_event(OaEvent.RECV_ANSWER if ack.body else OaEvent.REJECTED)
            self._emit(ReinviteAcked(_text(ack.body)))

    @property
    def acked_2xx(self) -> bool:
        """Whether we ACKed a 2xx to an INVITE of ours (its retransmissions need the ACK again)."""
        return bool(self._sent_acks)

    def on_stray_2xx(self, response: Response) -> None:
        """A retransmitted 2xx to one of our INVITEs: ACK it again (RFC 3261 §13.2.2.4)."""
        cached = self._sent_acks.get(response.cseq.seq) if response.cseq is not None else None
        if cached is not None:
            self._spawn(self._resend(cached))

    async def _resend(self, request: Request) -> None:
        if self.ua.layer.running:
            with retransmission("ack"):
                await self.ua.layer.send_stateless(request, self.next_hop)

    async def close(self) -> None:
        """End the call whatever its state (the UA is closing); idempotent."""
        raise NotImplementedError

    async def _wait_tasks(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
