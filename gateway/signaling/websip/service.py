"""SIP over WebSocket as a signaling dialect: JsSIP and SIP.js register and call through the one call core.

Every out-of-dialog request that arrives on a WS/WSS flow comes here (``UserAgent.web_sip``):

- REGISTER: digest (``sipcore.digest_server``) against users[].sip_auth, then the registrar; the AOR
  (To) must be the user's own (user id, extension or alias), else 403.
- INVITE: digest too (401, as Asterisk does; both libraries answer 401 and 407 alike), then the
  INVITE becomes an :class:`~gateway.sip.incoming.IncomingCall` whose in-dialog requests go back over
  its flow, and the call core places the call exactly as for a JSON session: ``dial(session, to,
  offer)`` with the browser's WebRTC offer, under the same outbound policy. Call events come back as
  SIP: ``ringing`` 180, ``early_media`` 183 with the WebRTC answer, ``connected`` 200 with it,
  ``ended`` a final error status (before the answer) or BYE. From the browser: CANCEL, BYE, INFO
  (application/dtmf-relay, application/dtmf) and re-INVITE hold/resume (answered at once, our last
  answer with the direction that mirrors theirs; the PBX side is held or resumed by the call core).
  Video added or dropped mid-call, by the library's re-INVITE or the SIP side's: gateway/signaling/websip/video.py.
- OPTIONS: 200 with our capabilities; anything else out of dialog: 481 (BYE, INFO...) or 405/501.

One :class:`WebSipSession` per (flow, user) is the call core's session (``SessionSink``); it closes when
its flow closes (its calls end: BYE to the far end) or when it has neither bindings nor calls.
Inbound calls: a session with a binding is in presence, so a call to its user rings it along with the
user's other sessions. It asks the call core for the WebRTC offer (``request_offer``: a SIP library
can only ring with one) and sends INVITE with it over the flow to each Contact bound there; the
browser's 200 answers the call (the others stop ringing), its 486/603/480 refuses it for this session;
when the call is answered elsewhere or cancelled, our INVITE is cancelled; BYE either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.config.schema import Config
from gateway.identity import WebUser
from gateway.identity.lookup import IdentityMap
from gateway.logs import RateLimit
from gateway.media.dtmf import parse_dtmf_relay
from gateway.signaling import events as sig
from gateway.signaling.errors import SignalingError
from gateway.signaling.service import CallService
from gateway.signaling.websip.credentials import SipCredentials
from gateway.signaling.websip.registrar import Flow, Registrar
from gateway.signaling.websip.video import MidcallVideo
from gateway.signaling.ws.connection import PresenceRegistry
from gateway.sip.incoming import IncomingCall
from gateway.sip.outgoing import OutgoingCall
from gateway.sip.transport_ws import WsTransport
from gateway.sip.tu import IncomingRequest
from gateway.sip.ua import ALLOW, UserAgent
from gateway.sip.ua_calls import Call, CallState
from gateway.sip.ua_events import (
    Answered,
    Bye,
    Cancelled,
    Confirmed,
    Failed,
    InfoReceived,
    ReinviteReceived,
    set_direction,
)
from sipcore.digest import Algorithm
from sipcore.digest_server import DigestServer, Outcome
from sipcore.headers import warning_value
from sipcore.inspection import refuse_method
from sipcore.requests import Endpoint
from sipcore.routing import Address, Target
from sipcore.uri import URI, SipURI

__all__ = ["WebSipService", "WebSipSession"]

logger = logging.getLogger(__name__)

_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}
_ids = itertools.count(1)
MAX_PENDING_CALLS = 16


class WebSipSession:
    """One browser SIP library on one flow, as the call core sees a session (``SessionSink``)."""

    def __init__(self, service: WebSipService, user: WebUser, flow: Flow) -> None:
        self._service = service
        self._user = user
        self.flow = flow
        self._id = f"sipws-{next(_ids)}"
        self._closed = False
        self.legs: dict[str, IncomingCall] = {}  # the call core's call id -> the browser's INVITE
        self.ringing: dict[str, tuple[str, str | None]] = {}  # inbound calls ringing us: id -> caller
        self.outgoing: dict[str, list[OutgoingCall]] = {}  # inbound: our INVITEs to the browser
        self._pending: dict[str, list[sig.Event]] = {}  # events that beat dial()'s return
        self._answers: dict[str, str] = {}  # our WebRTC answer per call, once sent
        self._video = MidcallVideo(self, service.calls, service.spawn, self._answers)  # video mid-call

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
            return  # video added or dropped mid-call (gateway/signaling/websip/video.py)
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
            case sig.Ended():
                self.ringing.pop(call_id, None)
                for leg in self.outgoing.pop(call_id, []):
                    self._service.spawn(_end_outgoing(leg))
                self._answers.pop(call_id, None)
                self._video.forget(call_id)
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
                    self._answers[call_id] = _answer_role(offer, answer)
                    self._video.settled(call_id, answer)
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
                case ReinviteReceived(sdp=offer_again):
                    await self._reinvite(call_id, leg, offer_again)
                case _:
                    pass

    # --- call events -> SIP --------------------------------------------------------------------------
    def adopt(self, call_id: str, leg: IncomingCall) -> None:
        self.legs[call_id] = leg
        for event in self._pending.pop(call_id, []):
            self._apply(call_id, leg, event)

    def _apply(self, call_id: str, leg: IncomingCall, event: sig.Event) -> None:
        unanswered = leg.state in (CallState.INCOMING, CallState.EARLY)
        try:
            match event:
                case sig.Ringing() if unanswered:
                    leg.ring()
                case sig.EarlyMedia(sdp=sdp) if unanswered and sdp:
                    self._answers[call_id] = sdp
                    self._video.settled(call_id, sdp)
                    leg.progress(sdp)
                case sig.Connected(sdp=sdp) if unanswered:
                    answer = sdp or self._answers.get(call_id)
                    if answer is None:
                        logger.warning("call=%s connected without an answer for the browser", call_id)
                        return
                    self._answers[call_id] = answer
                    self._video.settled(call_id, answer)
                    leg.answer(answer)
                case sig.Ended(sip_status=status, reason=reason, message=message):
                    self._end(call_id, leg, unanswered, status, reason, message)
                case _:
                    pass
        except Exception:
            logger.exception("call=%s SIP WebSocket leg: %s failed", call_id, type(event).__name__)

    def _end(
        self,
        call_id: str,
        leg: IncomingCall,
        unanswered: bool,
        status: int | None,
        reason: str,
        message: str = "",
    ) -> None:
        self.legs.pop(call_id, None)
        self._answers.pop(call_id, None)
        self._video.forget(call_id)
        if leg.ended:
            return
        if unanswered:
            code = status if status is not None and 300 <= status < 700 else _status_for(reason)
            leg.reject(code, _phrase(message) if message else None, headers=_warning(code, message))
        elif leg.state is CallState.CONFIRMED:
            self._service.spawn(_quietly(leg.bye()))
        self._service.session_idle(self)

    # --- the browser's side of one call -------------------------------------------------------------
    async def follow(self, call_id: str, leg: IncomingCall) -> None:
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
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind not in ("application/dtmf-relay", "application/dtmf"):
            return
        try:
            if kind == "application/dtmf":
                digit, duration = body.decode().strip(), None
            else:
                parsed = parse_dtmf_relay(body)
                digit, duration = parsed.digit, parsed.duration_ms
        except (ValueError, UnicodeDecodeError) as exc:
            logger.info("call=%s INFO with a bad DTMF body: %s", call_id, exc)
            return
        await _ignore_gone(self._service.calls.dtmf(self, call_id, digit, duration))

    async def _reinvite(self, call_id: str, leg: Call, offer: str) -> None:
        answer = self._answers.get(call_id)
        if not offer or answer is None:
            leg.reject_reinvite(488, "Not Acceptable Here")
            return
        if self._video.changes(
            call_id, offer
        ):  # the SIP side is asked first (gateway/signaling/websip/video.py)
            await self._video.from_library(call_id, leg, offer)
            return
        direction = _direction(offer)
        leg.answer_reinvite(set_direction(answer, _MIRROR.get(direction, "sendrecv")))
        if direction in ("sendonly", "inactive"):
            await _ignore_gone(self._service.calls.hold(self, call_id))
        elif direction == "sendrecv":
            await _ignore_gone(self._service.calls.resume(self, call_id))

    async def close(self) -> None:
        """The flow is gone: the call core ends our calls (BYE/CANCEL toward the far end)."""
        if self._closed:
            return
        self._closed = True
        await self._service.calls.session_closed(self)


class WebSipService:
    """The SIP WebSocket dialect: registrar, digest, and the sessions of the browsers' SIP libraries."""

    def __init__(
        self,
        config: Config,
        ua: UserAgent,
        calls: CallService,
        identities: IdentityMap,
        transport: WsTransport,
        presence: PresenceRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        websocket = config.sip.websocket
        assert websocket is not None
        self.ua = ua
        self.calls = calls
        self.identities = identities
        self.presence = presence  # bound sessions are online: inbound calls ring them
        self.transport = transport
        self.credentials = SipCredentials.from_config(config)
        realm = websocket.realm or config.pbx.effective_domain or config.http.host
        algorithms = [Algorithm.from_token(name) for name in websocket.digest_algorithms]
        self.digest = DigestServer(
            realm, self.credentials.ha1, algorithms=[a for a in algorithms if a is not None], clock=time.time
        )
        self.registrar = Registrar(
            clock, min_expires=websocket.min_expires, max_expires=websocket.max_expires
        )
        self.endpoint = Endpoint(
            transport.local[0],
            transport.local[1],
            transport.name,
            user_agent=config.sip.user_agent,
            allow=ALLOW,
        )
        self._sessions: dict[tuple[Flow, str], WebSipSession] = {}
        self._present: set[str] = set()  # sessions with a binding, in presence
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusals = RateLimit()
        self._expiry: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.ua.web_sip = self.on_request
        self.transport.on_flow_closed(self._flow_closed)
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop(), name="websip-expiry")
        logger.info(
            "SIP over WebSocket: realm %r, %d user(s) with sip_auth", self.digest.realm, len(self.credentials)
        )

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        for session in list(self._sessions.values()):
            await self._close(session)
        self._sessions.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("SIP WebSocket task failed", exc_info=task.exception())

    # --- requests ------------------------------------------------------------------------------------
    def on_request(self, incoming: IncomingRequest) -> None:
        method = incoming.request.method
        if method == "REGISTER":
            self.spawn(self._register(incoming))
        elif method == "INVITE":
            self.spawn(self._invite(incoming))
        elif method == "OPTIONS":
            incoming.reply(200, headers=self.ua.capabilities())
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            incoming.reply(481)
        else:
            refusal = refuse_method(method, ALLOW)
            status, headers = refusal or (405, (("Allow", ", ".join(ALLOW)),))
            incoming.reply(status, headers=headers)

    async def _authenticate(self, incoming: IncomingRequest) -> WebUser | None:
        """Digest (401 with challenges, 403 for wrong credentials); a client or user name that failed too
        often waits, as web logins do (the identity map's LoginThrottle): 403 with Retry-After."""
        client = incoming.source.host
        outcome = self.digest.check(incoming.request)
        username = outcome.username
        try:
            wait = await self.identities.throttle_wait(username or "", client)
        except SignalingError as exc:  # a cluster without Redis: the throttle cannot be read
            logger.warning("SIP WebSocket %s from %s refused: %s", incoming.method, incoming.source, exc)
            incoming.reply(503, "Shared State Unavailable", headers=(("Retry-After", "5"),))
            return None
        if wait > 0 and (not isinstance(outcome, Outcome) or outcome.status == 403):
            incoming.reply(403, "Too Many Failed Attempts", headers=(("Retry-After", str(math.ceil(wait))),))
            return None
        if isinstance(outcome, Outcome):
            if outcome.status == 403:
                await self.identities.throttle_failed(username or "", client)
                if self._refusals.allow(logger, logging.WARNING):
                    logger.warning(
                        "SIP WebSocket %s from %s refused: %s (user %r)",
                        incoming.method,
                        incoming.source,
                        outcome.reason,
                        username,
                    )
            reason = "Forbidden" if outcome.status == 403 else None
            incoming.reply(outcome.status, reason, headers=outcome.headers)
            return None
        user_id = self.credentials.user_of(outcome.username)
        user = await self.identities.store.get(user_id) if user_id is not None else None
        if user is None:
            incoming.reply(403, "Forbidden")
            return None
        await self.identities.throttle_succeeded(outcome.username, client)
        return user

    async def _register(self, incoming: IncomingRequest) -> None:
        user = await self._authenticate(incoming)
        if user is None:
            return
        to = incoming.request.to
        if to is None or not isinstance(to.uri, SipURI) or not _owns(user, to.uri):
            incoming.reply(403, "Not Your Address")
            return
        flow = _flow(incoming)
        result = self.registrar.register(incoming.request, user.id, flow)
        incoming.reply(result.status, result.reason, headers=result.headers)
        if result.status != 200:
            return
        if any(b.user_id == user.id for b in self.registrar.on_flow(flow)):
            session = await self._session(user, flow)
            if session.id not in self._present:  # a binding: the user is online there (inbound rings it)
                self._present.add(session.id)
                try:
                    await self.presence.add(user.id, session.id)
                except SignalingError as exc:  # a cluster without Redis: the next REGISTER refresh retries
                    self._present.discard(session.id)
                    logger.warning("%s registered over SIP WebSocket, not yet reachable: %s", user.id, exc)
                    return
                logger.info("%s registered over SIP WebSocket from %s", user.id, incoming.source)
        # the flow(s) left without a binding: this one (unregistered), or an outbound instance's old
        # flow whose binding this REGISTER replaced (RFC 5626 §6: a browser that reconnected)
        for (other, user_id), gone in list(self._sessions.items()):
            if user_id == user.id and not any(b.user_id == user.id for b in self.registrar.on_flow(other)):
                await self._absent(gone)
                self.session_idle(gone)

    async def _invite(self, incoming: IncomingRequest) -> None:
        if incoming.cancelled:
            incoming.reply(487)
            return
        user = await self._authenticate(incoming)
        if user is None:
            return
        uri = incoming.request.uri
        target = (uri.user or str(uri)) if isinstance(uri, SipURI) else str(uri)
        flow = _flow(incoming)
        leg = self.ua.accept_invite(
            incoming, self.endpoint, Target(flow.transport, flow.address[0], flow.address[1])
        )
        if leg is None:
            return
        session = await self._session(user, flow)
        try:
            call_id = await self.calls.dial(session, target, leg.offer)
        except SignalingError as exc:
            status = exc.http_status if isinstance(getattr(exc, "http_status", None), int) else 400
            code = {403: 403, 404: 404, 503: 503}.get(status, 488 if "sdp" in str(exc).lower() else 400)
            logger.info("call=%s from %s to %r refused: %s", leg.call_id, user.id, target, exc)
            leg.reject(code, _phrase(str(exc)), headers=_warning(code, str(exc)))
            self.session_idle(session)
            return
        logger.info(
            "call=%s: %s calls %r over SIP WebSocket (SIP call-id %s)", call_id, user.id, target, leg.call_id
        )
        session.adopt(call_id, leg)
        await session.follow(call_id, leg)

    # --- sessions ------------------------------------------------------------------------------------
    async def _session(self, user: WebUser, flow: Flow) -> WebSipSession:
        key = (flow, user.id)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = WebSipSession(self, user, flow)
            await self.calls.session_opened(session)
        return session

    async def _absent(self, session: WebSipSession) -> None:
        """The session has no binding left: inbound calls stop ringing it."""
        if session.id in self._present:
            self._present.discard(session.id)
            await self.presence.remove(session.user.id, session.id)

    async def _close(self, session: WebSipSession) -> None:
        await self._absent(session)
        await session.close()

    def session_idle(self, session: WebSipSession) -> None:
        """Close a session with no call and no binding left."""
        if session.legs or session.ringing or session.outgoing or session.closed:
            return
        if any(b.user_id == session.user.id for b in self.registrar.on_flow(session.flow)):
            return
        if self._sessions.get((session.flow, session.user.id)) is session:
            del self._sessions[(session.flow, session.user.id)]
            self.spawn(self._close(session))

    def _flow_closed(self, address: Address) -> None:
        for flow in {key[0] for key in self._sessions} | {Flow(self.transport.name, address)}:
            if flow.address != address:
                continue
            dropped = self.registrar.flow_closed(flow)
            if dropped:
                logger.info("SIP WebSocket %s:%d closed: %d binding(s) removed", *address, len(dropped))
            for key in [k for k in self._sessions if k[0] == flow]:
                self.spawn(self._close(self._sessions.pop(key)))

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            for binding in self.registrar.expire():
                session = self._sessions.get((binding.flow, binding.user_id))
                logger.info("binding of %s expired: %s", binding.user_id, binding.contact.uri)
                if session is not None and not any(
                    b.user_id == binding.user_id for b in self.registrar.on_flow(binding.flow)
                ):
                    await self._absent(session)
                    self.session_idle(session)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def flow_busy(self, address: Address) -> bool:
        """A call in progress (ringing, or answered) on the flow from `address`: a drain keeps it open."""
        return any(
            s.legs or s.ringing or s.outgoing
            for (flow, _), s in self._sessions.items()
            if flow.address == address
        )


def _flow(incoming: IncomingRequest) -> Flow:
    return Flow(incoming.source.transport.name, incoming.source.address)


def _owns(user: WebUser, uri: SipURI) -> bool:
    names = {user.id, user.aor.user or "", *(a.split("@", 1)[0].split(":", 1)[-1] for a in user.aliases)}
    return uri.user is not None and uri.user in names


def _direction(sdp_text: str) -> str:
    for line in sdp_text.splitlines():
        value = line.strip()
        if value in ("a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv"):
            return value[2:]
    return "sendrecv"


_STATUS_FOR_REASON = {
    "no_such_number": 404,
    "busy": 486,
    "cancelled": 487,
    "caller_cancelled": 487,
    "pbx_unreachable": 503,
    "declined": 603,
    "incompatible_media": 488,
    "media_failed": 488,
    "forbidden": 403,
    "destination_not_allowed": 403,
    "bad_destination": 484,
    "no_answer": 480,
    "server_error": 500,
}


def _status_for(reason: str) -> int:
    """The final status for the browser's INVITE when the call ended with ``reason`` and no SIP status."""
    return _STATUS_FOR_REASON.get(reason, 480)


def _warning(status: int, text: str) -> tuple[tuple[str, str], ...]:
    """A Warning (399, RFC 3261 §20.43) saying why an offer was refused (400, 488), as the UDP side
    gives the PBX's: a browser library's log shows it."""
    return (("Warning", warning_value(399, text)),) if text and status in (400, 488) else ()


def _phrase(text: str) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text)[:80]
    return clean or "Refused"


async def _ignore_gone(coro: Coroutine[Any, Any, None]) -> None:
    """A browser's request about a call the core has already ended is no error."""
    try:
        await coro
    except SignalingError as exc:
        logger.debug("SIP WebSocket request ignored: %s", exc)


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


def _answer_role(offer: str, answer: str) -> str:
    """Our offer as the SDP to mirror in answers to the browser's re-INVITEs: the DTLS role settled by
    its answer (RFC 5763 §5: actpass in an offer only)."""
    theirs = "active" if "a=setup:active" in answer else "passive"
    ours = "passive" if theirs == "active" else "active"
    return offer.replace("a=setup:actpass", f"a=setup:{ours}")


def _quoted(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\')


async def _quietly(coro: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(Exception):
        await coro
