"""One browser SIP library on one WebSocket flow as the call core sees a session (``SessionSink``).

A :class:`WebSipSession` (made by gateway/websip/service.py, one per (flow, user)) turns the
call core's events into SIP over its flow: for a call the browser placed, ``ringing`` 180,
``early_media`` 183 with the WebRTC answer, ``connected`` 200 with it, ``ended`` a final error status
(before the answer) or BYE; for an inbound call it rings each Contact bound on the flow with an INVITE
carrying the call core's WebRTC offer, and follows the browser's in-dialog requests (CANCEL, BYE, INFO
DTMF, re-INVITE hold/resume answered at once with the mirrored direction, one that restarts ICE with
our new credentials once the web leg restarted it in place; video mid-call: video.py). The SIP party's
hold and resume reach the library as our re-INVITE (hold.py); the library's REFER transfers the call
as the page's `transfer` does (transfer.py). Chat goes both ways as MESSAGE in the call's dialog (RFC
3428 §4): the library's to the SIP party, the SIP party's (`message` events) to the library. The SIP party's DTMF digits (`dtmf`
events: RFC 4733 or its INFO) reach the library as INFO application/dtmf-relay in the call's dialog, one
after the other (JsSIP's `newDTMF`, SIP.js's `onInfo`); a refusal leaves the call as it is, a 481 or no
answer (408: the UA ended the dialog, RFC 3261 §12.2.1.2) hangs it up. It closes when its flow closes
(its calls end; answered ones may wait for the library's new flow: flows.py) or when it has neither
bindings nor calls.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gateway.identity import WebUser
from gateway.media.webrtc.offer_restart import credentials_of, with_credentials
from gateway.signaling import events as sig
from gateway.signaling.errors import SignalingError
from gateway.signaling.service import ChatService, WebIceRestartService
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.ua_adopt import AdoptedCall
from gateway.sip.useragent.ua_calls import Call, CallState
from gateway.sip.useragent.ua_events import (
    Answered,
    Bye,
    Cancelled,
    Confirmed,
    Failed,
    InfoReceived,
    MessageReceived,
    ReferReceived,
    ReinviteReceived,
    set_direction,
    with_settled_setup,
)
from gateway.websip import takeover
from gateway.websip.digits import DigitRelay, digit_of, sent
from gateway.websip.hold import RemoteHold
from gateway.websip.registrar import Flow
from gateway.websip.statuses import reason_phrase, status_for, warning_headers
from gateway.websip.takeover import Renewals
from gateway.websip.transfer import LibraryTransfers
from gateway.websip.video import MidcallVideo
from sipcore.location.routing import Target
from sipcore.syntax.uri import URI

if TYPE_CHECKING:
    from gateway.websip.service import WebSipService

__all__ = ["WebSipSession"]

logger = logging.getLogger(__name__)

_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}
_ids = itertools.count(1)
_PROCESS = secrets.token_hex(4)  # this process's sessions' ids: not another instance's
MAX_PENDING_CALLS = 16
QUALITY_PACKAGE = "call-quality"  # the Info-Package of the call's legs while it is up (`_quality`)


class WebSipSession:
    """One browser SIP library on one flow, as the call core sees a session (``SessionSink``)."""

    def __init__(
        self, service: WebSipService, user: WebUser, flow: Flow, session_id: str | None = None
    ) -> None:
        self._service = service
        self._user = user
        self.flow = flow
        # unique across instances: a survivor makes a dead instance's session again under its id (takeover.py)
        self._id = session_id or f"sipws-{next(_ids)}-{_PROCESS}"
        self._closed = False
        # the call core's call id -> the browser's INVITE (or its dialog taken over from a dead instance)
        self.legs: dict[str, IncomingCall | AdoptedCall] = {}
        self.ringing: dict[str, tuple[str, str | None]] = {}  # inbound calls ringing us: id -> caller
        self.outgoing: dict[str, list[OutgoingCall]] = {}  # inbound: our INVITEs to the browser
        self._pending: dict[str, list[sig.Event]] = {}  # events that beat dial()'s return
        self._answers: dict[str, str] = {}  # our WebRTC answer per call, once sent
        self._video = MidcallVideo(self, service.calls, service.spawn, self._answers)  # video mid-call
        self._hold = RemoteHold(service.spawn, self._answers)  # the SIP party's hold (hold.py)
        self._transfers = LibraryTransfers(self, service.calls, service.spawn, self._call_of_dialog)
        # the SIP party's digits, each an INFO to the library once the one before is answered (digits.py)
        self._dtmf = DigitRelay(
            service.spawn, lambda call_id: _ignore_gone(service.calls.hangup(self, call_id))
        )
        self.identities: frozenset[str] = frozenset()  # its browser's instances / Contacts (flows.py)
        self._renewals = Renewals()  # re-INVITEs bringing a call taken over its new web media (takeover.py)

    # --- SessionSink ---------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def user(self) -> WebUser:
        return self._user

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_event(self, event: sig.Event) -> None:
        call_id = getattr(event, "call_id", None)
        if not isinstance(call_id, str):
            return  # registration states and the like: nothing to say over SIP
        if self._video.event(call_id, event, self._answered(call_id)):
            return  # video added or dropped mid-call (gateway/websip/video.py)
        if self._hold.event(call_id, event, self._answered(call_id)):
            return  # the SIP party holds or resumes: our re-INVITE to the library (hold.py)
        if self._transfers.event(call_id, event, self._answered(call_id)):
            return  # a transfer: NOTIFY to the library, or the SIP party's REFER to it (transfer.py)
        if isinstance(event, sig.DtmfReceived):
            self._dtmf.digit(call_id, event, self._answered(call_id))
            return
        if isinstance(event, sig.CallQuality):
            self._quality(call_id, event)
            return
        if isinstance(event, sig.Reattached) and event.sdp and self._renewals.answered(call_id, event.sdp):
            return
        if isinstance(event, sig.Ended):
            self._renewals.heard(event)  # a renewal waiting for it is refused
        if isinstance(event, sig.Incoming):
            self.ringing[call_id] = (event.from_uri, event.display_name)
            # not awaited here: events come from the call's own worker, which would wait for itself
            self._service.spawn(_ignore_gone(self._service.calls.request_offer(self, call_id)))
            return
        if call_id in self.ringing or call_id in self.outgoing:
            self._inbound(call_id, event)
            return
        leg = self.legs.get(call_id)
        if leg is None:  # an outbound call's events that beat dial()'s return (bounded: never adopted)
            if call_id in self._pending or len(self._pending) < MAX_PENDING_CALLS:
                self._pending.setdefault(call_id, []).append(event)
            return
        self._apply(call_id, leg, event)

    def _call_of_dialog(self, sip_call_id: str) -> str | None:
        """The call core's id of this session's call whose dialog with the library has ``sip_call_id``."""
        for call_id, leg in self.legs.items():
            if leg.call_id == sip_call_id:
                return call_id
        for call_id, legs in self.outgoing.items():
            if any(o.call_id == sip_call_id for o in legs):
                return call_id
        return None

    def dialog_call_ids(self, call_id: str) -> list[str]:
        """The SIP Call-IDs of call ``call_id``'s dialogs with the library (per-call traces, gateway/ops)."""
        leg = self.legs.get(call_id)
        return [leg.call_id] if leg is not None else [o.call_id for o in self.outgoing.get(call_id, [])]

    def answered_calls(self) -> list[str]:
        """The call core's ids of this session's calls whose dialog with the library is answered."""
        return [c for c in {*self.legs, *self.outgoing} if self._answered(c) is not None]

    def handover(self, call_id: str) -> dict[str, Any] | None:
        """The library's side of call ``call_id`` for an instance that would carry it on (`FlowSink`)."""
        return takeover.handover(self, call_id, self._answered(call_id), self._answers.get(call_id))

    def take_back(self, call_id: str, leg: AdoptedCall, answer: str) -> None:
        """Call ``call_id``'s dialog with the library, taken over from a dead instance (takeover.py)."""
        self.legs[call_id] = leg
        self.media_renewed(call_id, leg.remote_sdp or "", answer)  # (what the dead instance had)
        self._hold.taken_over(call_id, _direction(answer))  # the SIP party's hold, if it held
        self._service.spawn(self.follow(call_id, leg))

    def forget_call(self, call_id: str) -> None:
        """`FlowSink`: call ``call_id`` goes on at another instance, its dialog with the library too (a
        drain handed it over): forgotten here without a word to the library (no BYE: the dialog is the
        other's now), so that its flow, idle, is closed with 1012 and the library takes the call back
        there (takeover.py)."""
        legs: list[Call] = [*self.outgoing.pop(call_id, [])]
        leg = self.legs.pop(call_id, None)
        if leg is not None:
            legs.append(leg)
        self.ringing.pop(call_id, None)
        self._pending.pop(call_id, None)
        self._answers.pop(call_id, None)
        self._video.forget(call_id)
        self._hold.forget(call_id)
        for dialog in legs:
            if not dialog.ended:
                dialog.release()  # (its follower then asks the call core, which no longer has it, to hang up)

    def our_sdp(self, call_id: str) -> str | None:
        """Our last SDP to the library in call ``call_id`` (its DTLS role settled: ``with_settled_setup``)."""
        return self._answers.get(call_id)

    def media_renewed(self, call_id: str, offer: str, answer: str) -> str:
        """The call taken over has new web media (takeover.py): the library's ``offer``, our ``answer``."""
        self._answers[call_id] = answer
        self._video.library_said(call_id, offer)
        self._video.settled(call_id, answer)
        return answer

    def flow_back(self) -> None:
        """The library is on a flow again: calls taken over here get its media back (takeover.py)."""
        for call_id, leg in self.legs.items():
            if isinstance(leg, AdoptedCall):
                self._service.spawn(
                    takeover.renew_later(self._service.calls, self, call_id, leg, self._renewals)
                )

    def flow_lost(self) -> None:
        """The flow closed and the session waits for a new one (flows.py): the calls that were not yet
        answered end now (the library failed their INVITEs with its socket)."""
        calls = self._service.calls
        for call_id in [c for c in {*self.legs, *self.outgoing, *self.ringing} if self._answered(c) is None]:
            if call_id in self.legs:
                self._service.spawn(_ignore_gone(calls.cancel(self, call_id)))
            elif call_id in self.ringing:
                self.ringing.pop(call_id, None)
                self._service.spawn(_ignore_gone(calls.reject(self, call_id, 480)))

    def move_to(self, flow: Flow) -> None:
        """The library registered a new flow: every dialog's requests go over it from now on."""
        self.flow = flow
        hop = Target(flow.transport, flow.address[0], flow.address[1])
        for leg in self.legs.values():
            leg.next_hop = hop
        for legs in self.outgoing.values():
            for outgoing in legs:
                outgoing.next_hop = hop

    def referred(self, target: str) -> str | None:
        """The call whose REFER (passed on to the library) its INVITE to ``target`` carries out."""
        return self._transfers.referred(target)

    def _answered(self, call_id: str) -> Call | None:
        """The call's answered dialog with the library (ours or its INVITE), if any."""
        leg: Call | None = self.legs.get(call_id)
        if leg is not None:
            return leg if leg.state is CallState.CONFIRMED else None
        return next((o for o in self.outgoing.get(call_id, []) if o.state is CallState.CONFIRMED), None)

    # --- inbound: the gateway calls the browser --------------------------------------------------------
    def _inbound(self, call_id: str, event: sig.Event) -> None:
        match event:
            case sig.Offer(sdp=offer) if call_id in self.ringing and call_id not in self.outgoing:
                caller, display = self.ringing[call_id]
                self._answers[call_id] = offer
                self.outgoing[call_id] = []
                registrar = self._service.registrar
                bindings = [
                    b
                    for b in registrar.on_flow(self.flow)
                    if b.user_id == self.user.id and registrar.reachable(b)
                ]
                if not bindings:
                    self._service.spawn(_ignore_gone(self._service.calls.reject(self, call_id, 480)))
                    return
                for binding in bindings:
                    self._service.spawn(self._ring(call_id, binding.contact.uri, offer, caller, display))
            case sig.CallMessage(body=body):
                answered = self._answered(call_id)
                if answered is not None:
                    self._service.spawn(_tell(answered, call_id, body))
            case sig.Ended():
                self.ringing.pop(call_id, None)
                self._service.spawn(self._end_legs(call_id, self.outgoing.pop(call_id, [])))
                self._answers.pop(call_id, None)
                self._video.forget(call_id)
                self._hold.forget(call_id)
                self._service.session_idle(self)
            case _:
                pass

    async def _ring(self, call_id: str, contact: URI, offer: str, caller: str, display: str | None) -> None:
        identity = f'"{_quoted(display)}" <{caller}>' if display else f"<{caller}>"
        flow = Target(self.flow.transport, self.flow.address[0], self.flow.address[1])
        try:
            leg = await self._service.ua.invite(
                contact, offer, identity, next_hop=flow, endpoint=self._service.endpoint, flow=True
            )
        except (RuntimeError, ValueError) as exc:
            logger.info("call=%s: cannot ring %s over SIP WebSocket: %s", call_id, self.user.id, exc)
            return
        if call_id not in self.outgoing:  # ended while we were sending
            self._service.spawn(_end_outgoing(leg))
            return
        self.outgoing[call_id].append(leg)
        leg.transfers = True  # its REFER comes as ReferReceived (transfer.py)
        calls = self._service.calls
        async for event in leg.events():
            match event:
                case Answered(sdp=answer):
                    self.ringing.pop(call_id, None)
                    try:
                        await calls.answer(self, call_id, answer)
                    except SignalingError as exc:  # answered elsewhere, or over: this one goes
                        logger.info("call=%s: the browser's answer came too late: %s", call_id, exc)
                        await _quietly(leg.bye())
                        return
                    self._answers[call_id] = with_settled_setup(offer, answer)
                    self._video.settled(call_id, answer)
                    self._video.library_said(call_id, answer)
                case Failed(status=status):
                    others = [o for o in self.outgoing.get(call_id, []) if o is not leg and not o.ended]
                    if call_id in self.ringing and not others:
                        self.ringing.pop(call_id, None)
                        await _ignore_gone(calls.reject(self, call_id, _reject_status(status)))
                    return
                case Bye():
                    await _ignore_gone(calls.hangup(self, call_id))
                    return
                case InfoReceived(content_type=content_type, body=body):
                    await self._info(call_id, content_type, body)
                case MessageReceived(text=text):
                    await self._chat(call_id, text)
                case ReferReceived(target=target, replaces=replaces):
                    await self._transfers.refer(call_id, leg, target, replaces)
                case ReinviteReceived(sdp=offer_again):
                    await self._reinvite(call_id, leg, offer_again)
                case _:
                    pass

    # --- call events -> SIP --------------------------------------------------------------------------
    def adopt(self, call_id: str, leg: IncomingCall) -> None:
        self.legs[call_id] = leg
        self._video.library_said(call_id, leg.remote_sdp)  # the library's offer
        leg.transfers = True  # its REFER comes as ReferReceived (transfer.py)
        for event in self._pending.pop(call_id, []):
            self._apply(call_id, leg, event)

    def _apply(self, call_id: str, leg: IncomingCall | AdoptedCall, event: sig.Event) -> None:
        # the browser's INVITE not yet answered (a dialog taken over always is)
        new = (
            leg
            if isinstance(leg, IncomingCall) and leg.state in (CallState.INCOMING, CallState.EARLY)
            else None
        )
        unanswered = new is not None
        try:
            match event:
                case sig.Ringing() if new is not None:
                    new.ring()
                case sig.EarlyMedia(sdp=sdp) if new is not None and sdp:
                    self._answers[call_id] = sdp
                    self._video.settled(call_id, sdp)
                    new.progress(sdp)
                case sig.Connected(sdp=sdp) if new is not None:
                    answer = sdp or self._answers.get(call_id)
                    if answer is None:
                        logger.warning("call=%s connected without an answer for the browser", call_id)
                        return
                    self._answers[call_id] = answer
                    self._video.settled(call_id, answer)
                    new.answer(answer)
                case sig.CallMessage(body=body) if leg.state is CallState.CONFIRMED:
                    self._service.spawn(_tell(leg, call_id, body))
                case sig.Ended(sip_status=status, reason=reason, message=message):
                    self._end(call_id, leg, unanswered, status, reason, message)
                case _:
                    pass
        except Exception:
            logger.exception("call=%s SIP WebSocket leg: %s failed", call_id, type(event).__name__)

    def _end(
        self,
        call_id: str,
        leg: IncomingCall | AdoptedCall,
        unanswered: bool,
        status: int | None,
        reason: str,
        message: str = "",
    ) -> None:
        self.legs.pop(call_id, None)
        self._answers.pop(call_id, None)
        self._video.forget(call_id)
        self._hold.forget(call_id)
        if leg.ended:
            return
        if unanswered and isinstance(leg, IncomingCall):
            code = status if status is not None and 300 <= status < 700 else status_for(reason)
            leg.reject(
                code, reason_phrase(message) if message else None, headers=warning_headers(code, message)
            )
        elif leg.state is CallState.CONFIRMED:
            self._service.spawn(self._bye(call_id, leg))
        self._service.session_idle(self)

    async def _end_legs(self, call_id: str, legs: list[OutgoingCall]) -> None:
        """Our INVITEs to the library for an inbound call that ended: CANCEL, or BYE once the NOTIFYs of
        its transfer went."""
        await self._transfers.settled(call_id)
        for leg in legs:
            self._service.spawn(_end_outgoing(leg))

    async def _bye(self, call_id: str, leg: Call) -> None:
        """BYE to the library, after the NOTIFYs of its transfer (the final one says it succeeded)."""
        await self._transfers.settled(call_id)
        await _quietly(leg.bye())

    # --- the browser's side of one call -------------------------------------------------------------
    async def follow(self, call_id: str, leg: IncomingCall | AdoptedCall) -> None:
        """What the browser does in its dialog -> the call core."""
        calls = self._service.calls
        try:
            async for event in leg.events():
                match event:
                    case Cancelled():
                        await _ignore_gone(calls.cancel(self, call_id))
                        return
                    case Bye():
                        await _ignore_gone(calls.hangup(self, call_id))
                        return
                    case Failed():  # our 2xx never ACKed
                        await _ignore_gone(calls.hangup(self, call_id))
                        return
                    case InfoReceived(content_type=content_type, body=body):
                        await self._info(call_id, content_type, body)
                    case MessageReceived(text=text):
                        await self._chat(call_id, text)
                    case ReferReceived(target=target, replaces=replaces):
                        await self._transfers.refer(call_id, leg, target, replaces)
                    case ReinviteReceived(sdp=offer):
                        await self._reinvite(call_id, leg, offer)
                    case Confirmed():
                        pass
                    case _:
                        pass
        finally:
            self.legs.pop(call_id, None)
            self._service.session_idle(self)

    async def _info(self, call_id: str, content_type: str, body: bytes) -> None:
        """The library's INFO: a digit of its own to the call core (digits.py)."""
        digit = digit_of(call_id, content_type, body)
        if digit is not None:
            await _ignore_gone(self._service.calls.dtmf(self, call_id, *digit))

    def _quality(self, call_id: str, event: sig.CallQuality) -> None:
        """The call's legs while it is up, as an INFO of Info-Package `call-quality` (RFC 6086 §4.2.1)
        with the `/ws` event's JSON, to a library whose INVITE said it takes them (`Recv-Info:
        call-quality`, §5.2.2); others get nothing (no standard package carries it)."""
        leg = self._answered(call_id)
        if not isinstance(leg, IncomingCall) or QUALITY_PACKAGE not in leg.request.headers.tags("Recv-Info"):
            return
        self._service.spawn(_inform(leg, call_id, json.dumps(event.to_json(), separators=(",", ":"))))

    async def _chat(self, call_id: str, text: str) -> None:
        """The library's MESSAGE in the call's dialog (answered 200 by the UA): to the SIP party."""
        calls = self._service.calls
        if isinstance(calls, ChatService):
            await _ignore_gone(calls.call_message(self, call_id, text))

    async def _reinvite(self, call_id: str, leg: Call, offer: str) -> None:
        answer = self._answers.get(call_id)
        if not offer or answer is None:
            leg.reject_reinvite(488, "Not Acceptable Here")
            return
        try:  # the call waits for new web media (its instance died): the library's ICE restart brings it
            restarts = self._video.restarts(call_id, offer)
            renewed = await self._renewals.renewed(self._service.calls, self, call_id, offer, restarts)
        except SignalingError as exc:
            logger.info("call=%s the library's re-INVITE could not renew the media: %s", call_id, exc)
            leg.reject_reinvite(488, "Media Not Renewed")
            return
        if renewed is not None:
            answer = self.media_renewed(call_id, offer, renewed)
        elif self._video.changes(call_id, offer):  # the SIP side is asked first (gateway/websip/video.py)
            await self._video.from_library(call_id, leg, offer)
            return
        else:
            try:
                answer = await self._restarted(call_id, offer, answer)
            except SignalingError as exc:  # a new DTLS fingerprint, a web leg that cannot restart now
                logger.info("call=%s the library's ICE restart refused: %s", call_id, exc)
                leg.reject_reinvite(488, "ICE Restart Not Possible")
                return
        leg.answer_reinvite(self._mirrored(call_id, offer, answer))
        await self._told(call_id, offer)

    def _mirrored(self, call_id: str, offer: str, answer: str) -> str:
        """``answer`` to the library's ``offer`` with its direction mirrored (RFC 3264 §6.1), held while
        the SIP party holds the call (hold.py)."""
        return set_direction(
            answer, self._hold.answer_direction(call_id, _MIRROR.get(_direction(offer), "sendrecv"))
        )

    async def _told(self, call_id: str, offer: str) -> None:
        """The library's hold or resume in its ``offer``, to the call core."""
        direction = _direction(offer)
        if direction in ("sendonly", "inactive"):
            await _ignore_gone(self._service.calls.hold(self, call_id))
        elif direction == "sendrecv":
            await _ignore_gone(self._service.calls.resume(self, call_id))

    async def renewal_answer(self, call_id: str, offer: str, renewed: str | None) -> str | None:
        """Our answer to the library's ``offer`` in the 200 to our re-INVITE asking for it (takeover.py):
        the new web leg's (``renewed``), or, when that could not be made, our last one (the session
        stays as it was: the library keeps its call), mirrored, its hold or resume told."""
        answer = (
            self.media_renewed(call_id, offer, renewed) if renewed is not None else self._answers.get(call_id)
        )
        if answer is None:
            return None
        await self._told(call_id, offer)
        return self._mirrored(call_id, offer, answer)

    async def _restarted(self, call_id: str, offer: str, answer: str) -> str:
        """``answer`` with our new ICE credentials when the library's re-offer restarts ICE (a new
        ice-ufrag: JsSIP's ``renegotiate`` or SIP.js's ``invite`` with ``iceRestart``), restarted in place
        on the web leg (issue 34); else ``answer`` as it was (hold, resume, a session refresh)."""
        calls = self._service.calls
        if not isinstance(calls, WebIceRestartService):
            return answer
        restarted = await calls.restart_web_ice(self, call_id, offer)
        if restarted is None:
            return answer
        self._answers[call_id] = with_credentials(answer, credentials_of(restarted))
        logger.info("call=%s the library restarted ICE: answered with new credentials", call_id)
        return self._answers[call_id]

    async def close(self) -> None:
        """The flow is gone: the call core ends our calls (BYE/CANCEL toward the far end)."""
        if self._closed:
            return
        self._closed = True
        await self._service.calls.session_closed(self)


def _direction(sdp_text: str) -> str:
    for line in sdp_text.splitlines():
        value = line.strip()
        if value in ("a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv"):
            return value[2:]
    return "sendrecv"


async def _ignore_gone(coro: Coroutine[Any, Any, None]) -> None:
    """A browser's request about a call the core has already ended is no error."""
    try:
        await coro
    except SignalingError as exc:
        logger.debug("SIP WebSocket request ignored: %s", exc)


async def _tell(leg: Call, call_id: str, text: str) -> None:
    """The SIP party's chat text to the library: MESSAGE in the call's dialog (RFC 3428 §4)."""
    await sent(call_id, "MESSAGE", leg.message(text))


async def _inform(leg: Call, call_id: str, body: str) -> None:
    """The call's quality to the library that asked for it: INFO with Info-Package call-quality."""
    await sent(call_id, "INFO", leg.info("application/json", body, (("Info-Package", QUALITY_PACKAGE),)))


async def _end_outgoing(leg: OutgoingCall) -> None:
    """Our INVITE to a browser is no longer wanted: CANCEL it, or BYE once answered."""
    with contextlib.suppress(Exception):
        if leg.state in (CallState.CALLING, CallState.EARLY):
            leg.cancel()
        elif leg.state is CallState.CONFIRMED:
            await leg.bye()


def _reject_status(status: int) -> int:
    """The browser's refusal as the call core takes it: busy, declined, or unavailable."""
    return 486 if status in (486, 600) else 603 if status == 603 else 480


def _quoted(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\')


async def _quietly(coro: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(Exception):
        await coro
