"""`CallDriver`: the call layer's I/O. It implements `CallService` (WebSocket sessions) and
`OfferService` (the HTTP offer/answer API) over one `CallRegistry`, and takes the UA's incoming calls.

Each call gets a `CallRuntime` (gateway/runtime/call_runtime.py) that runs its commands and feeds
back its events in one task, so one call failing ends that call only. The driver's own job is the
entry points: browser requests become call events (and a refused event becomes a signaling error),
new INVITEs are resolved through the identity map (presence tells who is online) and become
`SipIncomingInvite`, and shutdown ends every call (CANCEL, BYE, 480) before the UA closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import sdp
from gateway.calls import (
    CallError,
    CallRegistry,
    IllegalEvent,
    InvalidValue,
    UnknownCall,
    WrongSession,
    custom_headers,
)
from gateway.calls import commands as cmd
from gateway.calls import events as ev
from gateway.calls.caller import MAX_HEADER_VALUE, CallerDetails
from gateway.calls.outbound import allowed_target
from gateway.calls.reasons import EndReason, reject_kind
from gateway.calls.states import CallDirection, CallState
from gateway.config import Config
from gateway.config.routes import MediaMode, RouteConfig, SipOffer, media_mode, route_for
from gateway.config.values import WebCalls
from gateway.identity import WebUser
from gateway.identity.lookup import IdentityMap
from gateway.identity.model import Found, InboundResult, NotOnline, SipIdentity
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import MediaEvent
from gateway.ops import logctx
from gateway.runtime.call_media import BridgedMedia
from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.early_route import EarlyRoutes
from gateway.runtime.messages import MAX_MESSAGE_BYTES, inbound_refusal, text_of
from gateway.runtime.offers import HttpSession
from gateway.runtime.reconnect import Reconnects
from gateway.runtime.web_calls import WebCallRefused, busy_refusal, web_route
from gateway.signaling.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError, SignalingError
from gateway.signaling.events import Calls, MessageReceived, PbxState, SipRegistration
from gateway.signaling.service import (
    EarlyAnswerSink,
    JsonValue,
    OfferResult,
    SelectiveEarlyAnswerSink,
    SessionSink,
)
from gateway.sip import UserAgent
from gateway.sip.incoming import IncomingCall
from gateway.sip.registrar_client import RegistrationChanged
from gateway.sip.tu import IncomingRequest
from gateway.sip.ua_calls import Call as SipCall
from sipcore import identity as identity_headers
from sipcore.errors import SIPError
from sipcore.headers import new_call_id

logger = logging.getLogger(__name__)

BridgeFactory = Callable[[str], BridgeSettings]  # call id -> that call's bridge settings
HTTP_RETENTION = 120.0  # seconds an ended HTTP session stays readable (GET /webrtc/sessions/{id})


class CallDriver:
    def __init__(
        self,
        registry: CallRegistry,
        identity: IdentityMap,
        bridge_settings: BridgeFactory,
        config: Config,
    ) -> None:
        self.registry = registry
        self.identity = identity
        self.dtmf_mode = config.sip.dtmf_mode
        self._pass_headers = config.sip.pass_headers  # custom headers passed both ways (allow-list)
        self._info_types = frozenset(config.sip.info_content_types)  # INFO bodies relayed (RFC 6086)
        self._pbx_domain = config.pbx.effective_domain
        self._bridge_settings = bridge_settings
        self._routes = config.routes
        self._web_calls = config.calls.web_calls
        self._has_pbx = config.pbx.address is not None
        self._ua: UserAgent | None = None
        self._sessions: dict[str, SessionSink] = {}
        self._http: dict[str, HttpSession] = {}
        self._runtimes: dict[str, CallRuntime] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self.registrations: dict[str, str] = {}  # AOR -> RegState value, for the users the UA registers
        self._reg_reasons: dict[str, str] = {}
        self.pbx_state: str | None = None  # the OPTIONS keep-alive's view, told to every session (`pbx`)
        self.on_call_end: Callable[[CallRuntime], None] | None = None  # call records, metrics (gateway/ops)
        self.reconnects = Reconnects(registry)  # calls waiting for their browser (runtime/reconnect.py)
        # A cluster (gateway/cluster/routing.py): the Contacts to redirect an INVITE for users who are
        # online on other instances only (302), or () to answer as alone (480 / ring here)
        # (NotOnline), or to fork to every instance holding her when she is split over several (Found)
        self.inbound_redirect: Callable[[IncomingCall | IncomingRequest, NotOnline | Found], Awaitable[tuple[str, ...]]] | None = None  # fmt: skip
        self.early = EarlyRoutes(self)  # ...decided before the UA builds the call (runtime/early_route.py)
        # ...and web-to-web calls for a callee online on another instance only: the Request-URI there,
        # and the parameter that keeps a call through this instance's own listener from being redirected
        self.cluster_web_route: Callable[[WebUser], Awaitable[str | None]] | None = None
        self.cluster_route_tag = ""
        # Rooms with SIP parties (gateway/runtime/room_media.py): the target of an INVITE for one of
        # `rooms.numbers` (the room's own session), or None for the usual lookup
        self.room_calls: Callable[[str, str | None], Awaitable[Found | None]] | None = None

    # --- what the runtimes need (RuntimeHost) --------------------------------------------------------
    @property
    def ua(self) -> UserAgent:
        if self._ua is None:
            raise RuntimeError("the driver has no SIP user agent yet")
        return self._ua

    def attach_ua(self, ua: UserAgent) -> None:
        self._ua = ua
        ua.on_message = self.on_message
        ua.route_invite = self.early.route
        self.registrations = dict(ua.registration_states())

    def session(self, session_id: str) -> SessionSink | None:
        return self._sessions.get(session_id)

    def new_bridge(self, call_id: str, on_event: Callable[[MediaEvent], None]) -> BridgedMedia:
        settings = self._bridge_settings(call_id)
        machine = self.registry.get(call_id) if call_id in self.registry else None
        if machine is not None and machine.direct:
            # a web user of ours on the far side of the loop: the browsers' codec order on the loop's SIP
            # leg too, so that both bridges forward (Opus end to end) instead of transcoding to PCMU
            web_first = [
                c for c in settings.web_codecs if c.lower() in {s.lower() for s in settings.sip_codecs}
            ]
            rest = [c for c in settings.sip_codecs if c.lower() not in {w.lower() for w in web_first}]
            settings = replace(settings, sip_codecs=(*web_first, *rest))
        if machine is not None and machine.direction is CallDirection.OUTBOUND:
            route = route_for(self._routes, machine.target)
            if route is not None and route.sip_offer is SipOffer.WEBRTC:  # a WebRTC-only SIP side
                settings = replace(settings, offer_webrtc=True)
        return BridgedMedia(settings, on_event)

    def passthrough(self, call_id: str) -> bool:
        """A web user's call to a destination whose route says `media: passthrough`; a call to a web user
        from a caller (From URI) whose route says so, when its offer is WebRTC's (ICE and DTLS-SRTP: what
        a browser can take as it is; a plain RTP offer is terminated on the bridge whatever the route)."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        if machine is None:
            return False
        if machine.direction is CallDirection.OUTBOUND:
            if machine.direct and self._web_calls is WebCalls.P2P:  # to a web user: browser to browser
                return True
            return media_mode(self._routes, machine.target) is MediaMode.PASSTHROUGH
        return machine.passthrough  # decided with the INVITE (_inbound_passthrough)

    def _inbound_passthrough(self, caller: str, offer: str | None, looped: bool) -> bool:
        """Pass the caller's WebRTC offer to the browser: its route says so, or it is a web user's call
        looped through our own listener under `calls.web_calls: p2p` (the two browsers then talk
        directly; the gateway only carries the signaling, trickle ICE in INFO included)."""
        if offer is None:
            return False
        wanted = media_mode(self._routes, caller) is MediaMode.PASSTHROUGH
        return (wanted or (looped and self._web_calls is WebCalls.P2P)) and _webrtc_offer(offer)

    def resumable(self, call_id: str) -> bool:
        machine = self.registry.get(call_id) if call_id in self.registry else None
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        return self.reconnects.resumable(call_id, session)

    def runtime_done(self, runtime: CallRuntime) -> None:
        if self._runtimes.get(runtime.call_id) is runtime:
            del self._runtimes[runtime.call_id]
        if self.on_call_end is not None:
            try:
                self.on_call_end(runtime)
            except Exception:  # a call record or a metric must never break the call's teardown
                logger.exception("call=%s end of call not recorded", runtime.call_id)
        for task in runtime.pending:  # a BYE still retransmitted to a far end that does not answer
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def calls(self) -> int:
        return len(self.registry)

    @property
    def accepting(self) -> bool:
        return self._accepting

    def drain(self) -> None:
        """Take no new call (INVITEs get 503, new web calls `unavailable`); calls in progress go on."""
        if self._accepting:
            logger.info("draining: no new calls (%d in progress)", len(self.registry))
        self._accepting = False

    def http_session_ids(self) -> tuple[str, ...]:
        """The HTTP-API/WHIP sessions this process holds (their ownership is shared in a cluster)."""
        return tuple(self._http)

    @property
    def runtimes(self) -> tuple[CallRuntime, ...]:
        """The calls being carried out (for metrics: their bridges' figures)."""
        return tuple(self._runtimes.values())

    @property
    def sessions(self) -> tuple[SessionSink, ...]:
        """The open browser sessions of every dialect (WebSocket, HTTP offer, SIP over WebSocket)."""
        return tuple(self._sessions.values())

    def sip_call(self, call_id: str) -> SipCall | None:
        runtime = self._runtimes.get(call_id)
        return runtime.sip.call if runtime is not None else None

    def transfer_done(self, runtime: CallRuntime, consult_call_id: str | None) -> None:
        """An attended transfer succeeded: the far end of the consultation call normally ends it (the
        INVITE with Replaces makes it BYE us, RFC 3891 §3); whatever is left after 2 s is hung up."""
        if consult_call_id is not None:
            self._spawn(self._end_replaced(consult_call_id, 2.0))

    async def _end_replaced(self, call_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if call_id not in self.registry or call_id not in self._runtimes:
            return
        machine = self.registry.get(call_id)
        if machine.session_id is None:
            return
        logger.info("call=%s replaced by a transfer: hanging up", call_id)
        try:
            await self._runtimes[call_id].feed(ev.WebHangup(machine.session_id))
        except CallError as exc:
            logger.info("call=%s not hung up after the transfer: %s", call_id, exc)

    def transfer_outcome(self, call_id: str, status: int, phrase: str) -> None:
        runtime = self._runtimes.get(call_id)
        if runtime is not None and not runtime.finished:
            runtime.feed_nowait(ev.TransferOutcome(status, phrase))

    def _start_runtime(
        self,
        call_id: str,
        direction: CallDirection,
        commands: list[cmd.Command],
        sip_call_id: str | None = None,
    ) -> CallRuntime:
        runtime = CallRuntime(call_id, direction, self)
        runtime.sip.next_call_id = sip_call_id  # before its first command: the INVITE takes it
        if call_id in self.registry:
            runtime.machine = self.registry.get(call_id)
        self._runtimes[call_id] = runtime
        runtime.run_commands(commands)
        return runtime

    def _runtime(self, call_id: str) -> CallRuntime:
        runtime = self._runtimes.get(call_id)
        if runtime is None or runtime.finished or call_id not in self.registry:
            raise NotFound(f"no call {call_id!r}", field="call_id")
        return runtime

    async def _feed(self, call_id: str, event: ev.Event) -> None:
        """Feed a browser request's event; the machine's refusal becomes a signaling error."""
        try:
            await self._runtime(call_id).feed(event)
        except (UnknownCall, WrongSession):
            raise NotFound(f"no call {call_id!r} for this session", field="call_id") from None
        except IllegalEvent as exc:
            raise Conflict(str(exc), field="call_id") from None
        except CallError as exc:
            raise BadRequest(str(exc)) from None

    # --- CallService -------------------------------------------------------------------------------
    async def session_opened(self, session: SessionSink) -> None:
        self._sessions[session.id] = session
        logger.info("session %s of %s opened", session.id, session.user.id)
        if self.pbx_state is not None:
            await session.send_event(PbxState(self.pbx_state))
        aor = session.user.aor.aor
        if aor in self.registrations:  # the user's SIP identity is registered by the gateway
            await session.send_event(
                SipRegistration(aor, self.registrations[aor], self._reg_reasons.get(aor, ""))
            )
        waiting = self.reconnects.waiting(session)  # calls of this login whose browser went: `reattach`
        if waiting:
            await session.send_event(Calls(waiting))

    async def session_closed(self, session: SessionSink) -> None:
        """Each call of the session hears WebDisconnected in its own task (as registry.session_closed)."""
        for call_id in self.registry.calls_of(session.id):
            runtime = self._runtimes.get(call_id)
            if runtime is None:
                continue
            try:
                await runtime.feed(self.reconnects.leaving(session, call_id, runtime))
            except CallError as exc:
                logger.info("call=%s disconnect of %s: %s", call_id, session.id, exc)
        for call_id in self.reconnects.abandoned(session):  # a logout: its login's waiting calls end
            machine = self.registry.get(call_id) if call_id in self.registry else None
            runtime = self._runtimes.get(call_id)
            if machine is not None and machine.session_id is not None and runtime is not None:
                with contextlib.suppress(CallError):
                    await runtime.feed(ev.WebDisconnected(machine.session_id))
        self._sessions.pop(session.id, None)
        logger.info("session %s of %s closed", session.id, session.user.id)

    async def reattach(self, session: SessionSink, call_id: str, sdp: str) -> None:
        """`reattach`: a call of the session's login whose browser went, or its own call's new media."""
        self._runtime(call_id)
        self.reconnects.claim(session, call_id)
        await self._feed(call_id, ev.WebReattach(session.id, sdp))
        self.reconnects.reattached(call_id)

    async def dial(
        self,
        session: SessionSink,
        to: str,
        sdp: str,
        headers: tuple[tuple[str, str], ...] = (),
        transfer_of: str | None = None,
    ) -> str:
        if not self._accepting:
            raise ServiceError("the gateway is shutting down", code="unavailable", http_status=503)
        if transfer_of is not None and (
            transfer_of not in self.registry or session.id not in self.registry.get(transfer_of).sessions
        ):
            raise NotFound(f"no call {transfer_of!r} for this session", field="transfer_of")
        try:
            chosen = custom_headers(dict(headers), self._pass_headers)
        except CallError as exc:
            raise BadRequest(str(exc), field="headers") from None
        if not sdp.strip():
            raise BadRequest("the call needs an offer (SDP)", field="sdp")
        route = await self._web_route(session.user, to)
        # the call's tasks log with its ids (gateway/ops/logctx.py): its SIP Call-ID, chosen now for its
        # INVITE, from the first line on
        sip_call_id, context = new_call_id(), logctx.CallContext()
        logctx.add_sip_call_id(context, sip_call_id)  # indexed: the UA's own lines name the Call-ID
        with logctx.bind_call(context):
            try:
                call_id, commands = self.registry.dial(
                    ev.WebDial(session.id, session.user, to, sdp, chosen, route=route)
                )
            except CallError as exc:
                raise BadRequest(str(exc), field="to") from None
            if call_id not in self.registry:  # refused at once by policy: no SIP at all
                error = next((c for c in commands if isinstance(c, cmd.NotifyError)), None)
                message = error.message if error is not None else "the call was refused"
                if error is not None and error.code == "destination_not_allowed":
                    raise Forbidden(message, field="to")
                raise BadRequest(message, field="to", code=error.code if error is not None else None)
            runtime = self._start_runtime(call_id, CallDirection.OUTBOUND, commands, sip_call_id)
        runtime.transfer_of = transfer_of  # the call a REFER asked for: its progress goes to the referrer
        return call_id

    async def _web_route(self, caller: WebUser, to: str) -> str | None:
        """A web user of ours whom `to` names: her Request-URI through our own SIP listener (None: the
        usual way, through the PBX; gateway/runtime/web_calls.py)."""
        if self._web_calls is WebCalls.PBX or self._ua is None:
            return None
        try:
            return await web_route(
                self.identity,
                self._ua,
                caller,
                to,
                pbx=self._has_pbx,
                elsewhere=self.cluster_web_route,
                tag=self.cluster_route_tag,
            )
        except WebCallRefused as exc:
            if exc.forbidden:
                raise Forbidden(str(exc), field="to") from None
            raise BadRequest(str(exc), field="to", code="bad_destination") from None

    async def answer(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        """Without `sdp`: accept the ringing call (the gateway's offer follows as `offer`); with it:
        the browser's answer to that offer."""
        if sdp is None:
            await self._feed(call_id, ev.WebAccept(session.id))
        else:
            await self._feed(call_id, ev.WebSdpAnswer(session.id, sdp))

    async def request_offer(self, session: SessionSink, call_id: str) -> None:
        """A ringing session that needs the gateway's offer to ring (a SIP library); it comes as `offer`,
        and `answer(sdp=...)` with the browser's answer takes the call."""
        await self._feed(call_id, ev.WebOfferWanted(session.id))

    async def reject(self, session: SessionSink, call_id: str, status: int) -> None:
        await self._feed(call_id, ev.WebReject(session.id, reject_kind(status)))

    async def cancel(self, session: SessionSink, call_id: str) -> None:
        await self._feed(call_id, ev.WebHangup(session.id))

    async def hangup(self, session: SessionSink, call_id: str) -> None:
        await self._feed(call_id, ev.WebHangup(session.id))

    async def reoffer(self, session: SessionSink, call_id: str, sdp: str) -> None:
        """`offer` mid-call: the browser's own new offer (video added or dropped, escalation.py)."""
        await self._feed(call_id, ev.WebReoffer(session.id, sdp))

    async def hold(self, session: SessionSink, call_id: str) -> None:
        await self._feed(call_id, ev.WebHold(session.id))

    async def resume(self, session: SessionSink, call_id: str) -> None:
        await self._feed(call_id, ev.WebResume(session.id))

    async def dtmf(self, session: SessionSink, call_id: str, digits: str, duration_ms: int | None) -> None:
        await self._feed(call_id, ev.WebDtmf(session.id, digits, duration_ms))

    async def info(self, session: SessionSink, call_id: str, content_type: str, body: str) -> None:
        if content_type not in self._info_types:
            allowed = ", ".join(sorted(self._info_types)) or "none"
            raise BadRequest(
                f"content_type {content_type!r} is not in sip.info_content_types ({allowed})",
                field="content_type",
            )
        await self._feed(call_id, ev.WebInfo(session.id, content_type, body))

    async def call_message(self, session: SessionSink, call_id: str, body: str) -> None:
        """Chat in call `call_id`: SIP MESSAGE in its dialog (gateway/calls/chat.py)."""
        try:
            event = ev.WebMessage(body, session.id)
        except InvalidValue as exc:
            raise BadRequest(str(exc), field="body") from None
        await self._feed(call_id, event)

    async def message(self, session: SessionSink, to: str, body: str) -> int:
        """MESSAGE to `to` (RFC 3428), checked as a call to `to` would be; the final SIP status."""
        user = session.user
        target = allowed_target(user, to, self._pbx_domain)
        if isinstance(target, tuple):
            code, text = target
            if code is EndReason.DESTINATION_NOT_ALLOWED:
                raise Forbidden(f"You may not send messages to {to.strip()}", field="to")
            raise BadRequest(text, field="to")
        if self._ua is None or len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise BadRequest(f"body must be at most {MAX_MESSAGE_BYTES} bytes", field="body")
        identity = SipIdentity(user.aor, user.display_name, user.credentials)
        try:
            response = await self._ua.message(target, identity, body)
        except (SIPError, RuntimeError, ValueError) as exc:
            logger.info("MESSAGE from %s to %s not sent: %s", user.id, target, exc)
            return 503
        logger.info("MESSAGE from %s to %s: %d", user.id, target, response.status)
        return response.status

    def on_message(self, incoming: IncomingRequest) -> None:
        """The UA's callback for a MESSAGE out of dialog (sync): deliver it in a task."""
        self._spawn(self._message_in(incoming))

    async def _message_in(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        refusal = inbound_refusal(request)
        if refusal is not None:
            incoming.reply(refusal[0], refusal[1], headers=refusal[2])
            return
        to = request.to
        target = await self.identity.resolve_inbound(
            str(request.uri), str(to.uri) if to is not None else None
        )
        if not isinstance(target, Found):
            incoming.reply(target.sip_status)
            return
        sender = request.from_
        event = MessageReceived(
            str(sender.uri) if sender is not None else "sip:anonymous@anonymous.invalid",
            sender.display_name if sender is not None else None,
            text_of(request),
        )
        delivered = 0
        for session_ids in target.sessions.values():
            for session_id in session_ids:
                session = self._sessions.get(session_id)
                if session is not None and not session.closed:
                    await session.send_event(event)
                    delivered += 1
        incoming.reply(200 if delivered else 480)

    async def transfer(
        self, session: SessionSink, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        """Transfer call `call_id`: blind to `to`, or attended to the far end of the session's other
        connected call `replaces` (docs/signaling.md `transfer`)."""
        if replaces is not None:
            if replaces == call_id or session.id not in (
                self.registry.get(replaces).sessions if replaces in self.registry else ()
            ):
                raise NotFound(f"no other call {replaces!r} for this session", field="replaces")
            if self.registry.get(replaces).state not in (CallState.CONNECTED, CallState.HOLDING):
                raise Conflict(f"call {replaces!r} is not connected", field="replaces")
        try:
            event = ev.WebTransfer(session.id, session.user, to, replaces)
        except CallError as exc:
            raise BadRequest(str(exc), field="to") from None
        await self._feed(call_id, event)

    async def add_candidate(
        self, session: SessionSink, call_id: str, candidate: sdp.IceCandidateInit | None
    ) -> None:
        runtime = self._runtime(call_id)
        if session.id not in self.registry.get(call_id).sessions:
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        runtime.add_candidate(candidate)

    # --- the HTTP offer/answer API (OfferApi delegates here) ----------------------------------------
    def early_answer(self, call_id: str) -> Callable[[str], None] | None:
        """Sessions of the API dialects (HTTP offers, JSON-RPC) get the WebRTC answer as soon as the bridge
        made it (RuntimeHost), and the WebSocket sessions' calls placed with `early_answer`; the others
        with the far end's answer."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        if isinstance(session, SelectiveEarlyAnswerSink) and not session.wants_early_answer(call_id):
            return None  # a WebSocket call placed without early_answer
        return (
            functools.partial(session.web_answer, call_id) if isinstance(session, EarlyAnswerSink) else None
        )

    async def http_offer(
        self,
        user: WebUser,
        sdp: str,
        dial: str | None,
        metadata: Mapping[str, JsonValue],
        session_id: str | None,
    ) -> OfferResult:
        """One WebRTC session per offer, calling `dial`; answered as soon as the WebRTC answer exists
        (docs/signaling.md), the call's progress in the session's `SessionProgress`."""
        self._expire_http()
        if session_id is not None and (session_id in self._sessions or session_id in self._http):
            raise Conflict(f"session {session_id!r} exists already", field="session_id")
        if not dial:
            raise BadRequest(
                "metadata.dial is required (no default destination is configured for you)",
                field="metadata.dial",
            )
        session = HttpSession(user, on_end=self._http_ended, session_id=session_id, dial=dial)
        self._sessions[session.id] = session
        self._http[session.id] = session
        try:
            session.call_id = await self.dial(session, dial, sdp)
            session.progress.call_id = session.call_id
            # Awaited directly, not through asyncio.shield: shield's outer future wakes this handler one
            # loop iteration later, behind the web leg's ICE start and other calls' work (~1 ms of each
            # offer -> answer, issue 14 goal 3). A cancelled handler cancels the future, as
            # _close_http below would anyway.
            answer = await session.answer
        except BaseException:
            await self._close_http(session)
            raise
        return OfferResult(session.id, answer, (), metadata, call_id=session.call_id)

    def _http_ended(self, session: HttpSession) -> None:
        """The session's call ended (the far end hung up, or it never connected): it takes no more
        requests but stays readable (GET /webrtc/sessions/{id}) for HTTP_RETENTION seconds."""
        self._sessions.pop(session.id, None)

    def _expire_http(self) -> None:
        now = asyncio.get_running_loop().time()
        for session in list(self._http.values()):
            if session.ended_at is not None and now - session.ended_at > HTTP_RETENTION:
                del self._http[session.id]

    def http_session(self, user: WebUser, session_id: str) -> HttpSession:
        self._expire_http()
        session = self._http.get(session_id)
        if session is None or session.user.id != user.id:
            raise NotFound(f"no session {session_id!r}", field="session_id")
        return session

    async def http_add_candidate(
        self, user: WebUser, session_id: str, candidate: sdp.IceCandidateInit | None
    ) -> None:
        session = self.http_session(user, session_id)
        if session.call_id is not None and session.call_id in self._runtimes:
            self._runtimes[session.call_id].add_candidate(candidate)

    async def http_close(self, user: WebUser, session_id: str) -> None:
        await self._close_http(self.http_session(user, session_id))

    async def _close_http(self, session: HttpSession) -> None:
        call_id = session.call_id
        if call_id is not None and call_id in self._runtimes and call_id in self.registry:
            try:
                await self._runtimes[call_id].feed(ev.WebHangup(session.id))
            except CallError as exc:
                logger.info("call=%s HTTP close: %s", call_id, exc)
        session.close()
        self._http.pop(session.id, None)
        self._sessions.pop(session.id, None)

    # --- SIP side ----------------------------------------------------------------------------------
    def on_incoming_call(self, call: IncomingCall) -> None:
        """The UA's callback for a new INVITE (sync): resolve and start the call in a task."""
        if not self._accepting:
            call.reject(503, "Service Unavailable")
            return
        if call.replaces is not None:
            self._spawn(self._replacing(call, call.replaces))
            return
        self._spawn(self._incoming(call, self.early.take(call.incoming)))

    async def _replacing(self, call: IncomingCall, old: SipCall) -> None:
        """An INVITE with Replaces the UA accepted (RFC 3891 §3) goes to the call whose SIP leg it names;
        a leg of no call of ours (a SIP library's call over WebSocket) gets 481."""
        runtime = next((r for r in self._runtimes.values() if r.sip.call is old and not r.finished), None)
        if runtime is None or runtime.sip.replacing is not None:
            call.reject(481 if runtime is None else 491)
            return
        caller = call.caller
        runtime.sip.replacing = call
        logctx.add_sip_call_id(runtime.log_context, call.call_id)
        event = ev.SipReplacingInvite(
            str(caller.uri) if caller is not None else "sip:anonymous@anonymous.invalid",
            caller.display_name if caller is not None else None,
            call.offer or None,
        )
        try:
            await runtime.feed(event)
        except CallError as exc:
            logger.info("call=%s INVITE with Replaces refused: %s", runtime.call_id, exc)
            if runtime.sip.replacing is call:
                runtime.sip.replacing = None
            if not call.ended:
                call.reject(481)

    def _caller_details(self, call: IncomingCall) -> CallerDetails:
        """What the INVITE says of the caller beyond From: the asserted identity only from a peer the
        gateway trusts (RFC 3325 §5), diversions, and the allow-listed custom headers."""
        headers = call.request.headers
        trusted = self._ua is not None and self._ua.trusts(call.source.host)
        asserted = identity_headers.asserted_identity(headers) if trusted else None
        passed = []
        for name in self._pass_headers:
            value = headers.get(name)
            if value is not None and len(value) <= MAX_HEADER_VALUE and value.isprintable():
                passed.append((name, value))
        return CallerDetails(
            asserted.uri if asserted is not None else None,
            asserted.display_name if asserted is not None else None,
            tuple((d.uri, d.reason) for d in identity_headers.diversions(headers)),
            tuple(passed),
        )

    async def _incoming(self, call: IncomingCall, routed: InboundResult | None = None) -> None:
        with logctx.bind_call(logctx.CallContext(sip_call_ids=(call.call_id,))):
            await self._incoming_call(call, routed)

    async def _incoming_call(self, call: IncomingCall, routed: InboundResult | None) -> None:
        """`routed`: the target EarlyRoutes resolved (and did not redirect), else resolved here."""
        try:
            request_uri = str(call.request_uri)
            callee = call.callee
            to_uri = str(callee.uri) if callee else None
            target = routed
            if target is None:
                room = await self.room_calls(request_uri, to_uri) if self.room_calls is not None else None
                target = (
                    room if room is not None else await self.identity.resolve_inbound(request_uri, to_uri)
                )
            caller = call.caller
            if (
                routed is None
                and isinstance(target, (NotOnline, Found))
                and self.inbound_redirect is not None
            ):
                try:
                    contacts = await self.inbound_redirect(call, target)
                except SignalingError as exc:  # the shared state is unreachable: the edge tries another
                    logger.warning("call=%s %s: %s", call.call_id, target.target, exc)
                    call.reject(503, "Cluster State Unavailable")
                    return
                if contacts:  # RFC 3261 §21.3.3: online on other instances (too); the edge proxy follows
                    logger.info(  # (several Contacts: it forks to all of them)
                        "call=%s %s is on other instances: 302 %s", call.call_id, target.target, contacts
                    )
                    call.reject(
                        302, "Moved Temporarily", headers=tuple(("Contact", f"<{c}>") for c in contacts)
                    )
                    return
            if isinstance(target, Found):
                busy = busy_refusal(self.registry, target, self._pbx_domain)
                if busy is not None:
                    logger.info(
                        "call=%s %s busy: %d %s", call.call_id, target.target, busy.status, busy.contact or ""
                    )
                    headers = (("Contact", f"<{busy.contact}>"),) if busy.contact is not None else ()
                    call.reject(busy.status, headers=headers)
                    return
            from_uri = str(caller.uri) if caller is not None else "sip:anonymous@anonymous.invalid"
            event = ev.SipIncomingInvite(
                request_uri,
                from_uri,
                caller.display_name if caller is not None else None,
                call.offer or None,
                target,
                details=self._caller_details(call),
                passthrough=self._inbound_passthrough(
                    from_uri, call.offer or None, self._ua is not None and self._ua.ours(call.request)
                ),
            )
            call_id, commands = self.registry.incoming(event)
        except Exception:
            logger.exception("call=%s incoming INVITE could not be handled", call.call_id)
            if not call.ended:
                call.reject(500, "Server Internal Error")
            return
        runtime = self._start_runtime(call_id, CallDirection.INBOUND, commands)
        runtime.attach_sip(call)

    def on_registration(self, change: RegistrationChanged) -> None:
        """The UA's callback: record the state (for /healthz and later logins) and tell the user's sessions."""
        self.registrations[change.aor] = change.new.value
        self._reg_reasons[change.aor] = change.reason
        failed = change.new.value in ("failed", "retry wait")
        logger.log(
            logging.WARNING if failed else logging.INFO,
            "registration of %s: %s -> %s (%s)",
            change.aor,
            change.old.value,
            change.new.value,
            change.reason,
        )
        event = SipRegistration(change.aor, change.new.value, change.reason)
        for session in list(self._sessions.values()):
            if session.user.aor.aor == change.aor and not session.closed:
                self._spawn(session.send_event(event))

    def pbx_changed(self, state: str) -> None:
        """The PBX keep-alive's state changed (gateway/ops/health.py): every session hears `pbx`."""
        if state == self.pbx_state:
            return
        self.pbx_state = state
        event = PbxState(state)
        for session in list(self._sessions.values()):
            if not session.closed:
                self._spawn(session.send_event(event))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- shutdown ------------------------------------------------------------------------------------
    def reload_routes(self, routes: tuple[RouteConfig, ...]) -> None:
        """SIGHUP (gateway/reload.py): the media routes of calls placed from now on."""
        self._routes = routes

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting calls, end every call (BYE, CANCEL, 480) and close the bridges; idempotent."""
        self._accepting = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        runtimes = list(self._runtimes.values())
        for runtime in runtimes:
            machine = self.registry.get(runtime.call_id) if runtime.call_id in self.registry else None
            sessions = sorted(machine.sessions) if machine is not None else []
            if machine is not None and machine.detached and machine.session_id is not None:
                sessions = [machine.session_id]  # a call waiting for its browser ends too (BYE)
            for session_id in sessions:
                try:
                    await runtime.feed(ev.WebDisconnected(session_id))
                except (CallError, SignalingError) as exc:
                    logger.info("call=%s shutdown: %s", runtime.call_id, exc)
        if runtimes:
            await asyncio.gather(*(r.stop(timeout) for r in runtimes), return_exceptions=True)
        for session in list(self._http.values()):
            session.close()
        self._http.clear()


def loopback_bridge_settings(settings: BridgeSettings) -> BridgeSettings:
    """A gateway bound to loopback serves browsers on this machine only: its web legs also gather
    127.0.0.1 (aioice skips loopback addresses; a browser may only have loopback candidates, as
    Chromium with --allow-loopback-in-peer-connection on a host without a network)."""
    return replace(settings, include_loopback=True)


def _webrtc_offer(offer: str) -> bool:
    """Whether a SIP offer's first audio m-line is WebRTC media: DTLS-SRTP (RFC 5764) with ICE (RFC 8839)."""
    try:
        description = sdp.parse(offer)
    except sdp.SdpError:
        return False
    for index, media in enumerate(description.media):
        if media.media == "audio" and media.port != 0:
            return sdp.is_dtls_srtp(description, index) and description.ice_for(index) is not None
    return False
